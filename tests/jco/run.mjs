// Runs the standalone edgestore component on Node.js through jco's transpiler: a WASI 0.2 host
// that shares no code with ours. Driven by tests/standalone_jco.rs; usable by hand:
//
//   node tests/jco/run.mjs COMPONENT DATA_DIR roundtrip        repository + spool round trip
//   node tests/jco/run.mjs COMPONENT DATA_DIR command ARGS...  the command entry point (wasi:cli/run)
//   node tests/jco/run.mjs COMPONENT DATA_DIR write-forever     writes until killed (crash test)
//   node tests/jco/run.mjs COMPONENT DATA_DIR bench             rows/s of 200 commits of 500 rows
//
// EDGESTORE_JOURNAL (WAL, DELETE, ...) is passed to the component: `bench` compares them.
//
// DATA_DIR is preopened as /data. `roundtrip` prints one JSON object with what it read back.
import { mkdtemp, rm } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { transpile, writeFiles } from '@bytecodealliance/jco-transpile';
import { _setPreopens, types } from '@bytecodealliance/preview2-shim/filesystem';
import { _setArgs, _setEnv } from '@bytecodealliance/preview2-shim/cli';

const [component, dataDir, mode, ...rest] = process.argv.slice(2);
if (!component || !dataDir || !mode) {
  console.error('usage: run.mjs COMPONENT DATA_DIR roundtrip|command ARGS...|write-forever');
  process.exit(2);
}

// wasi-libc asks for `mutate-directory` on every writable open (SQLite's database, the spool's
// files); preview2-shim 0.26 refuses that flag as unsupported, although Node needs no such
// permission to open a file in a directory it may write. Drop the flag: the rest of the open
// (create, exclusive, truncate, read/write) goes through unchanged.
const openAt = types.Descriptor.prototype.openAt;
types.Descriptor.prototype.openAt = function (pathFlags, path, openFlags, descriptorFlags) {
  const flags = { ...descriptorFlags, mutateDirectory: false };
  return openAt.call(this, pathFlags, path, openFlags, flags);
};

// The generated module imports the shim by package name: it must live under this directory so
// Node resolves the same node_modules (and the same preopens) as this script.
const int = (n) => ({ tag: 'integer', val: BigInt(n) });
const text = (s) => ({ tag: 'text', val: s });
const column = (name, type) => ({
  name, type, nullable: false, unique: false, indexed: false, immutable: false, generated: [],
});
const itemSchema = {
  table: 'item',
  columns: [column('id', 'integer'), column('name', 'text')],
  key: ['id'],
  indexes: [],
  foreignKeys: [],
  createMode: 'insert',
};

function plain(v) {
  return JSON.parse(JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? Number(x) : x)));
}

async function roundtrip(m) {
  const { repository, spool } = m;
  const store = repository.Store.open('default');
  store.register(itemSchema);
  const rows = Array.from({ length: 100 }, (_, i) => [int(i), text(`item-${i}`)]);
  const created = store.createMany('item', rows);
  const got = store.get('item', [int(42)]);
  const count = store.count('item');
  store[Symbol.dispose]?.();

  const sp = spool.Spool.open({
    path: 'metrics',
    identifier: 'jco',
    compressionLevel: 5,
    maxRecords: 1000000n,
    maxIntervalMs: 3600000n,
    syncPolicy: { tag: 'on-flush' },
    retentionMs: 86400000n,
    maxBytes: undefined,
    dropPendingOverCap: false,
    recipients: [],
    identities: '',
  });
  const metrics = Array.from({ length: 50 }, (_, i) => ({
    cloudAccountId: 'acct',
    clusterName: 'c1',
    createdAt: '2024-01-01T00:00:00Z',
    id: `m${i}`,
    labels: [['pod', `p${i}`]],
    metricName: 'cpu',
    nodeName: 'n1',
    timestamp: new Date(1700000000000 + i * 1000).toISOString(),
    value: `${i}`,
  }));
  sp.put(metrics);
  sp.flush();
  const segments = sp.segments({ fromMs: undefined, toMs: undefined });
  const reader = sp.readRange({ fromMs: undefined, toMs: undefined });
  const back = [];
  for (;;) {
    const batch = reader.nextMetrics(16);
    if (batch.length === 0) break;
    back.push(...batch);
  }
  console.log(JSON.stringify(plain({
    created, get: got, count, segments: segments.length,
    segmentRows: segments.map((s) => s.rows), spoolRows: back.length,
    spoolSame: JSON.stringify(back) === JSON.stringify(metrics),
  })));
}

async function command(m) {
  // wasi:cli/run: `run` throws when the command failed (it already said why on stderr).
  try {
    m.run.run();
  } catch {
    process.exitCode = 1;
  }
}

async function writeForever(m) {
  const store = m.repository.Store.open('default');
  store.register(itemSchema);
  let id = 0;
  for (let batch = 0; ; batch++) {
    const rows = Array.from({ length: 500 }, () => [int(id), text(`row-${id++}-${'x'.repeat(200)}`)]);
    store.createMany('item', rows);
    if (batch === 0) console.log('ready');
  }
}

async function bench(m) {
  const store = m.repository.Store.open('default');
  store.register(itemSchema);
  let id = 0;
  const t = process.hrtime.bigint();
  for (let batch = 0; batch < 200; batch++) {
    const rows = Array.from({ length: 500 }, () => [int(id), text(`row-${id++}-${'x'.repeat(200)}`)]);
    store.createMany('item', rows);
  }
  const secs = Number(process.hrtime.bigint() - t) / 1e9;
  console.log(JSON.stringify({ journal: process.env.EDGESTORE_JOURNAL ?? 'WAL', rows: id, rowsPerSec: Math.round(id / secs) }));
}

// Last: the helpers above must be initialised before the top-level await runs them.
const here = dirname(fileURLToPath(import.meta.url));
const out = await mkdtemp(join(here, '.out-'));
try {
  const { files } = await transpile(component, { name: 'edgestore', outDir: out });
  await writeFiles(files);
  _setPreopens({ '/data': dataDir });
  _setArgs(['edgestore-standalone', ...rest]);
  // Only the variables the component reads pass into it.
  const env = {};
  for (const name of ['EDGESTORE_JOURNAL', 'EDGESTORE_KEY']) {
    if (process.env[name]) env[name] = process.env[name];
  }
  _setEnv(env);
  const m = await import(pathToFileURL(join(out, 'edgestore.js')).href);
  const run = { roundtrip, command, 'write-forever': writeForever, bench }[mode];
  if (!run) throw new Error(`unknown mode ${mode}`);
  await run(m);
} finally {
  await rm(out, { recursive: true, force: true });
}

