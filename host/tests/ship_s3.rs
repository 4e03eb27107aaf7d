//! Shipping to a real S3-protocol server, checked by a client that is not ours.
//!
//! moto's server mode runs on a loopback port (started and killed by the tests,
//! [`common::s3::S3Server`]); the built `edgestore` ships to it (`spool ship --once`, or `serve`
//! with `ship.target`); the AWS CLI lists and downloads what arrived. Each object must be
//! byte-identical (SHA-256) to its local segment, decode with `brotli -d | jq length` to the
//! segment's rows, and sit under the key `ship.keyTemplate` gives it.
//!
//! * Ship once (both engines): every segment under its key, identical, readable, acknowledged; a
//!   second run with nothing pending sends no request; a segment over `ship.partSize` goes up in
//!   parts, under a key template of our own.
//! * SIGKILL at random points of 50 uploads (`serve` and `spool ship --once`, on both engines, in
//!   turn): after each kill every segment is pending or uploaded with its object present and
//!   identical; a last run ships the rest; with the bucket versioned, no key was ever written
//!   with other bytes.
//! * Objects already there: the same bytes (left by a crash before the acknowledgement, or put
//!   by another client) count as shipped without a second write; other bytes are never
//!   overwritten.
//! * Server down, then back (a counting TCP proxy plays the outage): the lag grows, health fails
//!   naming the target, `/metrics` counts failures, the connection attempts stay bounded (no busy
//!   loop), and everything ships once the server is back.
//! * A missing bucket, and wrong credentials (moto's IAM checks on): one error line naming the
//!   target and the server's reason, health says so, nothing uploaded, no retry storm.
//!
//! moto does not check a body against its `Content-MD5` or `x-amz-checksum-sha256` (it keeps
//! what it was sent), so the store's own verification is not exercised here: the tests check
//! integrity end to end instead, by downloading every object and hashing it.
//!
//! moto and the AWS CLI are pinned by `./test.sh` in the venv `target/s3-venv` (or
//! `$EDGESTORE_S3_VENV`); without it the tests are skipped with a note, and fail under CI.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use edgestore::sample::MetricGenerator;

mod common;

use common::s3::{self, isolate_aws_env, sha256_file, Proxy, S3Server};
use common::{edgestore, output_within, signal, terminate, text, wait_until, Serving, ENGINES};

/// The bucket the tests ship to.
const BUCKET: &str = "edgestore-ship";

/// How long one `edgestore` command may take.
const CMD_TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------------------------
// A store configured to ship

/// A data directory and its config file (`ship` pointed at a target), with the test's AWS
/// credentials.
struct Store {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
    target: String,
    engine: &'static str,
    access_key_id: String,
    secret_access_key: String,
    /// A shared credentials file to read the keys from instead of the environment.
    credentials_file: Option<PathBuf>,
}

/// What a store's config says besides `ship.target` and `ship.endpoint`.
struct Settings<'a> {
    /// `storage.maxRecords`: rows per segment.
    max_records: usize,
    /// More `ship` keys, YAML flow-mapping entries (`interval: 200ms`).
    ship: &'a str,
    /// More top-level YAML.
    extra: &'a str,
}

impl Default for Settings<'_> {
    fn default() -> Self {
        Settings {
            max_records: 2000,
            ship: "",
            extra: "",
        }
    }
}

impl Store {
    /// A store shipping to `target` through `endpoint` (path-style, plain HTTP), keeping
    /// uploaded segments (`deleteAfter: false`) so the tests can compare them.
    fn new(target: &str, endpoint: &str, settings: Settings<'_>) -> Store {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let data = tmp.path().join("data");
        let config = tmp.path().join("edgestore.yaml");
        let ship_extra = if settings.ship.is_empty() {
            String::new()
        } else {
            format!(", {}", settings.ship)
        };
        let yaml = format!(
            "storage: {{maxRecords: {}}}\n\
             ship: {{target: '{target}', endpoint: '{endpoint}', region: {}, pathStyle: true, \
             allowHttp: true, deleteAfter: false{ship_extra}}}\n{}",
            settings.max_records,
            s3::REGION,
            settings.extra
        );
        std::fs::write(&config, yaml).expect("write the config");
        Store {
            _tmp: tmp,
            data,
            config,
            target: target.to_owned(),
            engine: "native",
            access_key_id: s3::ACCESS_KEY_ID.to_owned(),
            secret_access_key: s3::SECRET_ACCESS_KEY.to_owned(),
            credentials_file: None,
        }
    }

    /// `edgestore --data DIR --engine ENGINE --config FILE` with the store's AWS credentials.
    fn cmd(&self) -> Command {
        self.cmd_on(self.engine)
    }

    /// [`Store::cmd`] on `engine`.
    fn cmd_on(&self, engine: &str) -> Command {
        let mut cmd = edgestore(&self.data, engine);
        cmd.arg("--config").arg(&self.config);
        isolate_aws_env(&mut cmd, &self.access_key_id, &self.secret_access_key);
        if let Some(file) = &self.credentials_file {
            cmd.env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env("AWS_SHARED_CREDENTIALS_FILE", file);
        }
        cmd
    }

    /// Run `edgestore ... ARGS` to its end (3 minutes at most).
    fn run(&self, args: &[&str]) -> Output {
        output_within(self.cmd().args(args), CMD_TIMEOUT)
    }

    /// Run `edgestore ... ARGS`, which must succeed; its stdout.
    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "edgestore {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `spool put --flush` (or `--documents`) of JSON `lines` (3 minutes at most).
    fn put_lines(&self, lines: &[String], documents: bool) {
        let mut cmd = self.cmd();
        cmd.args(["spool", "put", "--flush"]);
        if documents {
            cmd.arg("--documents");
        }
        let err = tempfile::NamedTempFile::new().unwrap();
        let mut child = Guard(
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(err.reopen().unwrap())
                .spawn()
                .expect("start spool put"),
        );
        let mut stdin = child.0.stdin.take().expect("stdin");
        let body = lines.join("\n") + "\n";
        let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()));
        let status = wait_until(
            "spool put to finish",
            CMD_TIMEOUT,
            Duration::from_millis(20),
            || child.0.try_wait().expect("try_wait"),
        );
        let written = writer.join().expect("the writer thread");
        let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
        assert!(status.success(), "spool put failed ({status}): {stderr}");
        written.expect("write rows to spool put");
    }

    /// `spool put --flush` of `n` generated metrics (seed `seed`).
    fn put_metrics(&self, seed: u64, n: usize) {
        let lines: Vec<String> = MetricGenerator::new(seed, 1_700_000_000_000)
            .batch(n)
            .iter()
            .map(|m| serde_json::to_string(m).expect("a metric as JSON"))
            .collect();
        self.put_lines(&lines, false);
    }

    /// `spool list --json`.
    fn segments(&self) -> Vec<Segment> {
        let out = self.run_ok(&["spool", "list", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("spool list printed {out:?}: {e}"));
        v.as_array()
            .unwrap_or_else(|| panic!("spool list --json: not an array: {out}"))
            .iter()
            .map(|s| Segment {
                name: s["name"].as_str().expect("name").to_owned(),
                state: s["state"].as_str().expect("state").to_owned(),
                start_ms: s["start_ms"].as_i64().expect("start_ms"),
                rows: s["rows"].as_u64().expect("rows"),
                bytes: s["bytes"].as_u64().expect("bytes"),
            })
            .collect()
    }

    /// Where the segment `name` is on disk (pending in the spool's root, or in `uploaded/`).
    fn segment_file(&self, name: &str) -> PathBuf {
        let spool = self.data.join("metrics");
        [spool.join(name), spool.join("uploaded").join(name)]
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("segment {name} is neither pending nor uploaded on disk"))
    }

    /// `serve` with stdin piped (rows as JSON lines), returned once it listens.
    fn serve(&self) -> Serving {
        Serving::start(self.cmd(), &[])
    }
}

/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A finished segment as `spool list --json` shows it.
#[derive(Debug, Clone)]
struct Segment {
    name: String,
    state: String,
    start_ms: i64,
    rows: u64,
    bytes: u64,
}

/// The default `ship.keyTemplate`.
const DEFAULT_TEMPLATE: &str = "{identifier}/{date}/{segment}";

/// The key `template` gives `segment` under the target's `prefix`: `{identifier}` is the name's
/// first component, `{date}` the UTC date (YYYY-MM-DD) of the segment's start, `{segment}` its
/// file name.
fn template_key(template: &str, prefix: &str, segment: &Segment) -> String {
    let identifier = segment
        .name
        .split('_')
        .next()
        .expect("an identifier in the name");
    let date =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(segment.start_ms) * 1_000_000)
            .expect("a start time")
            .date();
    let date = format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    );
    let key = template
        .replace("{identifier}", identifier)
        .replace("{date}", &date)
        .replace("{segment}", &segment.name);
    format!("{prefix}/{key}")
}

/// The key of `segment` under the default template.
fn default_key(prefix: &str, segment: &Segment) -> String {
    template_key(DEFAULT_TEMPLATE, prefix, segment)
}

/// `shipped N segments (B bytes) to TARGET[ (details)]` → (N, B, TARGET).
fn parse_shipped(stdout: &str) -> (u64, u64, String) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("shipped "))
        .unwrap_or_else(|| panic!("no `shipped N segments (B bytes) to TARGET` in {stdout:?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        words.len() >= 7
            && words[2].starts_with("segment")
            && words[3].starts_with('(')
            && words[4] == "bytes)"
            && words[5] == "to"
            && (words.len() == 7 || words[7].starts_with('(')),
        "unexpected summary {line:?}"
    );
    (
        words[1].parse().expect("N"),
        words[3].trim_start_matches('(').parse().expect("B"),
        words[6].to_owned(),
    )
}

/// `brotli -d -c FILE | jq length`: the number of rows an independent reader finds.
fn rows_by_brotli_and_jq(file: &Path) -> u64 {
    let cmd = format!(
        "brotli -d -c '{}' | jq length",
        file.to_str().expect("utf-8 path")
    );
    let out = output_within(Command::new("sh").args(["-c", &cmd]), CMD_TIMEOUT);
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{cmd} printed {:?}: {e}", text(&out.stdout)))
}

/// Whether `brotli` and `jq` run (installed by `./test.sh`).
fn decoders_available() -> bool {
    let install = "install the Debian packages brotli and jq (./test.sh --install-only does)";
    common::tool_available("brotli", install) && common::tool_available("jq", install)
}

// ---------------------------------------------------------------------------------------------
// HTTP to `serve`

/// One HTTP/1.0 GET (30 s at most): status and body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, body.to_owned())
}

/// `serve`'s `/metrics`, parsed by an independent Prometheus text reader.
fn scrape(serving: &Serving) -> prometheus_parse::Scrape {
    let (status, body) = http_get(serving.addr, "/metrics");
    assert_eq!(status, 200, "/metrics: {body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{body}"))
}

/// The sum of every sample of `name` (all label sets); `None` when there is none.
fn metric_sum(scrape: &prometheus_parse::Scrape, name: &str) -> Option<f64> {
    let values: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// `edgestore_ship_failures_total` by its `kind` label.
fn failures_by_kind(scrape: &prometheus_parse::Scrape) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in &scrape.samples {
        if s.metric != "edgestore_ship_failures_total" {
            continue;
        }
        if let prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) = s.value {
            let kind = s.labels.get("kind").unwrap_or("").to_owned();
            *out.entry(kind).or_insert(0.0) += v;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A small deterministic random source (the seed is printed, and can be set with
// EDGESTORE_TEST_SEED, so a failing order of kills can be replayed)

struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("EDGESTORE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("random seed {seed} (set EDGESTORE_TEST_SEED={seed} to replay)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---------------------------------------------------------------------------------------------
// a. Ship once

/// `spool ship --once` ships every pending segment, on both engines: the AWS CLI lists one
/// object per segment under the key the default template gives it, each byte-identical to the
/// local file and decoding (brotli, jq) to its rows; `spool list` shows them uploaded; a second
/// run has nothing to do and sends the server nothing. A segment over `ship.partSize` goes up
/// in parts (its ETag says so), under a key of a template of our own, and arrives identical
/// too, with no multipart upload left open.
#[test]
fn ship_once_uploads_every_segment_identical_under_its_key() {
    if !decoders_available() {
        return;
    }
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket(BUCKET);
    let started = Instant::now();
    let downloads = tempfile::tempdir().unwrap();

    for (i, engine) in ENGINES.into_iter().enumerate() {
        let prefix = format!("fleet/{engine}");
        let target = format!("s3://{BUCKET}/{prefix}");
        let mut store = Store::new(&target, &server.endpoint(), Settings::default());
        store.engine = engine;
        store.put_metrics(1 + i as u64, 9_000);
        let segments = store.segments();
        assert_eq!(
            segments.len(),
            5,
            "{engine}: 2000 rows a segment: {segments:?}"
        );
        assert!(
            segments.iter().all(|s| s.state == "pending"),
            "{engine}: {segments:?}"
        );
        let total: u64 = segments.iter().map(|s| s.bytes).sum();

        let out = store.run_ok(&["spool", "ship", "--once"]);
        assert_eq!(
            parse_shipped(&out),
            (5, total, target.clone()),
            "{engine}: the summary: {out}"
        );

        // Acknowledged.
        let after = store.segments();
        assert_eq!(after.len(), 5);
        for s in &after {
            assert_eq!(s.state, "uploaded", "{engine}: {s:?} after ship --once");
        }

        // One object per segment, under its key, nothing else.
        let listed = server.list_objects(BUCKET, &format!("{prefix}/"));
        let expected: BTreeMap<String, &Segment> = after
            .iter()
            .map(|s| (template_key(DEFAULT_TEMPLATE, &prefix, s), s))
            .collect();
        assert_eq!(
            listed.keys().collect::<BTreeSet<_>>(),
            expected.keys().collect::<BTreeSet<_>>(),
            "{engine}: the objects in the bucket against the segments' keys"
        );

        // Each downloaded on its own: identical bytes, the segment's rows.
        for (key, segment) in &expected {
            assert_eq!(listed[key].size, segment.bytes, "size of {key}");
            let to = downloads.path().join(&segment.name);
            let bytes = server.get_object(BUCKET, key, &to);
            let local = store.segment_file(&segment.name);
            assert_eq!(
                s3::sha256_hex(&bytes),
                sha256_file(&local),
                "{key}: the object differs from {}",
                local.display()
            );
            assert_eq!(rows_by_brotli_and_jq(&to), segment.rows, "rows of {key}");
        }

        // Nothing pending: no request at all.
        let before = server.requests().len();
        let out = store.run_ok(&["spool", "ship", "--once"]);
        assert_eq!(
            parse_shipped(&out),
            (0, 0, target.clone()),
            "{engine}: {out}"
        );
        let sent = &server.requests()[before..];
        assert!(
            sent.is_empty(),
            "{engine}: ship --once with nothing pending sent {sent:?}"
        );
    }

    // A segment over the part size: a multipart upload, identical. Random documents (they
    // hardly compress) make a 6 MiB segment quickly; parts are 5 MiB, the least S3 allows.
    const DOCUMENTS: usize = 8_500;
    const TEMPLATE: &str = "by-day/{date}/{identifier}/x-{segment}";
    let prefix = "fleet/multipart";
    let target = format!("s3://{BUCKET}/{prefix}");
    let big = Store::new(
        &target,
        &server.endpoint(),
        Settings {
            max_records: 100_000,
            ship: &format!("partSize: 5242880, keyTemplate: '{TEMPLATE}'"),
            ..Settings::default()
        },
    );
    let mut rng = Rng(7);
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let lines: Vec<String> = (0..DOCUMENTS)
        .map(|i| {
            let noise: String = (0..1_000)
                .map(|_| char::from(alphabet[rng.below(alphabet.len() as u64) as usize]))
                .collect();
            serde_json::json!({"n": i, "noise": noise}).to_string()
        })
        .collect();
    big.put_lines(&lines, true);
    let segments = big.segments();
    assert_eq!(segments.len(), 1, "{segments:?}");
    assert!(
        segments[0].bytes > 5 << 20,
        "the segment must be over one part: {segments:?}"
    );
    let out = big.run_ok(&["spool", "ship", "--once"]);
    assert_eq!(parse_shipped(&out), (1, segments[0].bytes, target), "{out}");
    let key = template_key(TEMPLATE, prefix, &big.segments()[0]);
    let listed = server.list_objects(BUCKET, &format!("{prefix}/"));
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        [&key],
        "the multipart object under its key"
    );
    let object = &listed[&key];
    assert!(
        object.etag.ends_with("-2"),
        "a 6 MiB segment in 5 MiB parts is a 2-part upload (ETag `md5-2`): {object:?}"
    );
    let to = downloads.path().join("big");
    let bytes = server.get_object(BUCKET, &key, &to);
    assert_eq!(
        s3::sha256_hex(&bytes),
        sha256_file(&big.segment_file(&segments[0].name)),
        "the multipart object differs from its segment"
    );
    assert_eq!(rows_by_brotli_and_jq(&to), DOCUMENTS as u64);
    assert_eq!(big.segments()[0].state, "uploaded");
    let open = server.aws_ok(&[
        "s3api",
        "list-multipart-uploads",
        "--bucket",
        BUCKET,
        "--output",
        "json",
    ]);
    assert!(
        !open.contains("UploadId"),
        "a multipart upload was left open: {open}"
    );
    eprintln!("ship once: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// b. SIGKILL at random points

/// What the bucket holds against the store: every segment is pending or uploaded, every object
/// is the object of one of the store's segments and identical to it, every uploaded segment
/// has its object, and no key ever showed other bytes than the first time it was seen (`seen`,
/// across rounds). Returns how many segments are uploaded, and how many pending ones already
/// have their object (uploaded, not yet acknowledged).
fn check_consistent(
    server: &S3Server,
    store: &Store,
    prefix: &str,
    names: &BTreeSet<String>,
    seen: &mut BTreeMap<String, String>,
    downloads: &Path,
    when: &str,
) -> (usize, usize) {
    let segments = store.segments();
    let by_key: BTreeMap<String, &Segment> = segments
        .iter()
        .map(|s| (default_key(prefix, s), s))
        .collect();
    let listed: BTreeSet<String> = segments.iter().map(|s| s.name.clone()).collect();
    assert_eq!(&listed, names, "{when}: segments appeared or vanished");
    for s in &segments {
        assert!(
            s.state == "pending" || s.state == "uploaded",
            "{when}: {s:?} is neither pending nor uploaded"
        );
    }
    let objects = server.download_all(BUCKET, prefix, downloads);
    let mut early = 0;
    for (key, sha) in &objects {
        let segment = by_key
            .get(key)
            .unwrap_or_else(|| panic!("{when}: object {key} is no segment's"));
        let local = sha256_file(&store.segment_file(&segment.name));
        assert_eq!(
            sha, &local,
            "{when}: object {key} differs from its segment ({})",
            segment.state
        );
        if let Some(first) = seen.insert(key.clone(), sha.clone()) {
            assert_eq!(&first, sha, "{when}: object {key} changed bytes");
        }
        if segment.state == "pending" {
            early += 1;
        }
    }
    let mut uploaded = 0;
    for (key, s) in &by_key {
        if s.state == "uploaded" {
            uploaded += 1;
            assert!(
                objects.contains_key(key),
                "{when}: {} is acknowledged but {key} is not in the bucket",
                s.name
            );
        }
    }
    (uploaded, early)
}

/// SIGKILL the shipper at random points of 50 uploads (`serve` with a short `ship.interval`,
/// and `spool ship --once`, in turn; uploads slowed by `ship.maxBytesPerSecond` so the kills
/// land during them): after every kill each segment is pending, or uploaded with its object
/// present and identical; a last run ships the rest; the bucket is versioned, and no key ever
/// held two different contents.
#[test]
fn sigkill_at_random_points_never_loses_or_changes_an_object() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket(BUCKET);
    server.enable_versioning(BUCKET);
    let started = Instant::now();

    let prefix = "kill";
    let target = format!("s3://{BUCKET}/{prefix}");
    // 50 segments of 200 rows (some 11 KB each), at most 2 uploads at once, 16 KiB/s: a run
    // uploads one or two segments a second, so kills in its first 1.5 s land before, between
    // and during uploads, and it takes a few dozen rounds to ship them all.
    let store = Store::new(
        &target,
        &server.endpoint(),
        Settings {
            max_records: 200,
            ship: "interval: 200ms, concurrency: 2, maxBytesPerSecond: 16384",
            ..Settings::default()
        },
    );
    store.put_metrics(2, 50 * 200);
    let segments = store.segments();
    assert_eq!(segments.len(), 50, "{segments:?}");
    let names: BTreeSet<String> = segments.iter().map(|s| s.name.clone()).collect();
    let total: u64 = segments.iter().map(|s| s.bytes).sum();
    eprintln!("50 segments, {total} bytes");

    let mut rng = Rng::from_env_or_clock();
    let mut seen = BTreeMap::new();
    let downloads = tempfile::tempdir().unwrap();
    let mut log = Vec::new();
    let mut uploaded = 0;
    let deadline = Instant::now() + Duration::from_secs(420);
    for round in 0..40 {
        if uploaded == 50 || Instant::now() > deadline {
            break;
        }
        // serve and ship --once in turn, each on both engines in turn (one spool format).
        let serve = round % 2 == 0;
        let engine = ENGINES[(round / 2) % 2];
        let delay = Duration::from_millis(rng.below(1_500));
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = store.cmd_on(engine);
        if serve {
            cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        } else {
            cmd.args(["spool", "ship", "--once"]);
        }
        let mut child = Guard(
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(stderr.reopen().unwrap())
                .spawn()
                .expect("start the shipper"),
        );
        std::thread::sleep(delay);
        let finished = child.0.try_wait().expect("try_wait");
        if finished.is_none() {
            signal(&child.0, libc::SIGKILL);
        }
        child.0.wait().expect("wait");
        let how = format!("{} ({engine})", if serve { "serve" } else { "ship --once" });
        if let Some(status) = finished {
            assert!(
                status.success(),
                "round {round}: {how} exited by itself with {status}:\n{}",
                std::fs::read_to_string(stderr.path()).unwrap_or_default()
            );
        }
        let when = format!("after round {round} ({how} killed after {delay:?})");
        let (now_uploaded, early) = check_consistent(
            &server,
            &store,
            prefix,
            &names,
            &mut seen,
            downloads.path(),
            &when,
        );
        assert!(
            now_uploaded >= uploaded,
            "{when}: acknowledged segments went from {uploaded} to {now_uploaded}"
        );
        log.push(format!(
            "round {round:2}: {how:<23} killed after {:>4} ms ({}): {now_uploaded:2} uploaded, \
             {early} uploaded but not yet acknowledged",
            delay.as_millis(),
            if finished.is_some() {
                "had finished"
            } else {
                "SIGKILL"
            },
        ));
        uploaded = now_uploaded;
    }
    eprintln!("{}", log.join("\n"));

    // A last run, not killed, ships the rest.
    let out = store.run_ok(&["spool", "ship", "--once"]);
    let (n, _, shipped_to) = parse_shipped(&out);
    assert_eq!(shipped_to, target);
    assert_eq!(
        n as usize,
        50 - uploaded,
        "the last run ships what was still pending: {out}"
    );
    let (now_uploaded, early) = check_consistent(
        &server,
        &store,
        prefix,
        &names,
        &mut seen,
        downloads.path(),
        "after the last run",
    );
    assert_eq!((now_uploaded, early), (50, 0));
    assert_eq!(seen.len(), 50);

    // Every write the bucket ever took: per key, one content (same size and MD5 ETag).
    let versions = server.list_versions(BUCKET, prefix);
    let mut by_key: BTreeMap<&str, BTreeSet<(u64, &str)>> = BTreeMap::new();
    for v in &versions {
        by_key
            .entry(&v.key)
            .or_default()
            .insert((v.size, v.etag.as_str()));
    }
    assert_eq!(by_key.len(), 50, "{versions:?}");
    for (key, contents) in &by_key {
        assert_eq!(
            contents.len(),
            1,
            "{key} was written with different bytes: {contents:?}"
        );
    }
    let rewrites = versions.len() - 50;
    let puts = server
        .requests()
        .iter()
        .filter(|r| r.starts_with("PUT ") || r.starts_with("POST "))
        .count();
    eprintln!(
        "kill test: {} versions for 50 keys ({rewrites} identical rewrites), {puts} PUT/POST \
         requests, {:?}",
        versions.len(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// c. Server down, then back

/// `serve` ships through a TCP proxy that plays a server that is down: while it is, the lag
/// grows past `health.maxShipLag`, `/healthz` and `edgestore health` fail naming the target,
/// `/metrics` counts failures, and the connection attempts stay few (backoff, not a busy loop);
/// with nothing to ship it sends nothing at all; once the server is back everything ships,
/// identical, and health recovers.
#[test]
fn server_down_then_back_lag_health_metrics_no_busy_loop_then_ships() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket(BUCKET);
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], server.port)));
    let started = Instant::now();

    let prefix = "outage";
    let target = format!("s3://{BUCKET}/{prefix}");
    let store = Store::new(
        &target,
        &proxy.url(),
        Settings {
            max_records: 500,
            ship: "interval: 300ms",
            extra: "health: {maxShipLag: 2s}\n",
        },
    );
    let mut serving = store.serve();

    // Nothing to ship: no connection at all over a dozen intervals.
    std::thread::sleep(Duration::from_millis(600));
    let idle_from = proxy.accepted();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        proxy.accepted(),
        idle_from,
        "serve connected to the target with nothing to ship"
    );
    let (status, body) = http_get(serving.addr, "/healthz");
    assert_eq!(status, 200, "/healthz before the outage: {body}");

    // The server goes down; 2000 rows make 4 segments.
    proxy.set_up(false);
    let rows: Vec<String> = MetricGenerator::new(3, 1_700_000_000_000)
        .batch(2_000)
        .iter()
        .map(|m| serde_json::to_string(m).unwrap())
        .collect();
    {
        let stdin = serving.child.stdin.as_mut().expect("serve's stdin");
        stdin
            .write_all((rows.join("\n") + "\n").as_bytes())
            .expect("write rows to serve");
        stdin.flush().unwrap();
    }
    let down_since = Instant::now();
    wait_until(
        "4 finished segments",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || (store.segments().len() == 4).then_some(()),
    );

    // Health fails, naming the target, once the lag passes 2 s.
    let (status, body) = wait_until(
        "/healthz to fail",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let (status, body) = http_get(serving.addr, "/healthz");
            (status != 200).then_some((status, body))
        },
    );
    eprintln!("/healthz while down: {status} {body}");
    assert!(
        body.contains(&target),
        "/healthz must name the target {target}: {body}"
    );
    let health = store.run(&["health"]);
    let said = format!("{}{}", text(&health.stdout), text(&health.stderr));
    eprintln!("edgestore health while down: {} {said}", health.status);
    assert!(!health.status.success(), "health passed while down: {said}");
    assert!(said.contains(&target), "health must name {target}: {said}");

    // Metrics: failures are counted (once a round's own retries are spent), the lag grows.
    let first = wait_until(
        "edgestore_ship_failures_total while the server is down",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let scrape = scrape(&serving);
            (failures_by_kind(&scrape).values().sum::<f64>() >= 1.0).then_some(scrape)
        },
    );
    eprintln!("failures while down: {:?}", failures_by_kind(&first));
    let lag1 =
        metric_sum(&first, "edgestore_ship_lag_seconds").expect("edgestore_ship_lag_seconds");
    assert!(lag1 >= 2.0, "lag {lag1} s after the health failure");

    // Connection attempts over 10 s of outage: bounded. A round every 300 ms for 4 segments
    // would be 130 and more; backing off between rounds keeps it to a few dozen at most.
    let from = proxy.accepted();
    let window = Duration::from_secs(10);
    std::thread::sleep(window);
    let attempts = proxy.accepted() - from;
    let second = scrape(&serving);
    let lag2 = metric_sum(&second, "edgestore_ship_lag_seconds").unwrap();
    assert!(lag2 >= lag1 + 9.0, "the lag grows: {lag1} s, then {lag2} s");
    eprintln!(
        "outage: {attempts} connection attempts in {window:?} ({} in all, {:?} down), \
         failures {:?}",
        proxy.refused(),
        down_since.elapsed(),
        failures_by_kind(&second)
    );
    assert!(
        attempts <= 50,
        "{attempts} connection attempts in {window:?} of outage: a busy loop"
    );
    assert!(
        attempts >= 1,
        "no attempt in {window:?} of outage: the shipper gave up"
    );
    assert!(
        store.segments().iter().all(|s| s.state == "pending"),
        "acknowledged while the server was down"
    );

    // Back: everything ships, health recovers.
    proxy.set_up(true);
    let back = Instant::now();
    wait_until(
        "every segment uploaded after the server came back",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || {
            store
                .segments()
                .iter()
                .all(|s| s.state == "uploaded")
                .then_some(())
        },
    );
    eprintln!("shipped {:?} after the server came back", back.elapsed());
    wait_until(
        "/healthz to pass again",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || (http_get(serving.addr, "/healthz").0 == 200).then_some(()),
    );
    let segments = store.segments();
    let total: u64 = segments.iter().map(|s| s.bytes).sum();
    let third = scrape(&serving);
    assert_eq!(
        metric_sum(&third, "edgestore_ship_segments_total"),
        Some(4.0),
        "edgestore_ship_segments_total"
    );
    assert_eq!(
        metric_sum(&third, "edgestore_ship_bytes_total"),
        Some(total as f64),
        "edgestore_ship_bytes_total"
    );
    let lag3 = metric_sum(&third, "edgestore_ship_lag_seconds").unwrap_or(0.0);
    assert!(lag3 < 2.0, "lag {lag3} s with nothing pending");
    let downloads = tempfile::tempdir().unwrap();
    let objects = server.download_all(BUCKET, prefix, downloads.path());
    assert_eq!(objects.len(), 4, "{objects:?}");
    for s in &segments {
        let key = default_key(prefix, s);
        assert_eq!(
            objects.get(&key),
            Some(&sha256_file(&store.segment_file(&s.name))),
            "{key}"
        );
    }
    let health = store.run(&["health"]);
    assert!(
        health.status.success(),
        "health after recovery: {}{}",
        text(&health.stdout),
        text(&health.stderr)
    );

    let status = terminate(&mut serving.child);
    assert!(status.success(), "serve on SIGTERM: {status}");
    eprintln!("outage test: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// d. Permanent refusals

/// A refusal that retrying cannot fix: `spool ship --once` fails with one error line naming
/// the target and the server's reason (`cause`), sends few requests, uploads nothing,
/// acknowledges nothing; `edgestore health` fails naming the target and the reason; `serve`
/// reports it on `/healthz` and `/metrics` and does not spin.
fn refused_permanently(server: &S3Server, store: &Store, what: &str, cause: &str) {
    store.put_metrics(4, 5_000);
    let segments = store.segments();
    assert_eq!(segments.len(), 3, "{segments:?}");

    let before = server.requests().len();
    let out = store.run(&["spool", "ship", "--once"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    eprintln!("{what}: spool ship --once said ({}):\n{said}", out.status);
    assert!(
        !out.status.success(),
        "{what}: ship --once succeeded: {said}"
    );
    assert!(
        said.contains(&store.target),
        "{what}: the error must name the target {}: {said}",
        store.target
    );
    let errors = text(&out.stderr)
        .lines()
        .filter(|l| l.contains("error"))
        .count();
    assert_eq!(errors, 1, "{what}: one error line: {said}");
    assert!(
        said.contains(cause),
        "{what}: the error must say {cause:?}: {said}"
    );
    let sent = server.requests()[before..].to_vec();
    eprintln!("{what}: ship --once sent {} requests", sent.len());
    assert!(
        sent.len() <= 10,
        "{what}: {} requests for a permanent refusal: {sent:?}",
        sent.len()
    );
    assert!(
        store.segments().iter().all(|s| s.state == "pending"),
        "{what}: acknowledged without an upload"
    );

    let health = store.run(&["health"]);
    let said = format!("{}{}", text(&health.stdout), text(&health.stderr));
    eprintln!("{what}: edgestore health said ({}):\n{said}", health.status);
    assert!(!health.status.success(), "{what}: health passed: {said}");
    assert!(
        said.contains(&store.target),
        "{what}: health must name the target {}: {said}",
        store.target
    );
    assert!(
        said.contains(cause),
        "{what}: health must say {cause:?}: {said}"
    );

    // `serve` (`ship.interval` 300 ms): reported, and no spinning over 6 s. A round is a HEAD
    // and a PUT for each of the 3 segments: a round every interval would be 20 rounds, 120
    // requests; backing off (doubling the wait) makes it 5 or so.
    let from = server.requests().len();
    let serve_started = Instant::now();
    let serving = store.serve();
    let body = wait_until(
        "/healthz to report the refusal",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let (status, body) = http_get(serving.addr, "/healthz");
            (status != 200 && body.contains(&store.target)).then_some(body)
        },
    );
    eprintln!("{what}: /healthz said: {body}");
    let window = Duration::from_secs(6);
    std::thread::sleep(window.saturating_sub(serve_started.elapsed()));
    let sent = server.requests()[from..].to_vec();
    eprintln!(
        "{what}: serve sent {} requests in {:?}",
        sent.len(),
        serve_started.elapsed()
    );
    assert!(
        sent.len() <= 60,
        "{what}: serve sent {} requests in {window:?} to a target that refuses: {sent:?}",
        sent.len()
    );
    let failures = failures_by_kind(&scrape(&serving));
    eprintln!("{what}: failures {failures:?}");
    assert!(
        failures.values().sum::<f64>() >= 1.0,
        "{what}: no edgestore_ship_failures_total"
    );
    assert!(store.segments().iter().all(|s| s.state == "pending"));
}

/// The config of a store whose target refuses: a round every 300 ms, unless backing off.
fn refusal_settings() -> Settings<'static> {
    Settings {
        ship: "interval: 300ms",
        ..Settings::default()
    }
}

/// The bucket does not exist.
#[test]
fn missing_bucket_is_one_clear_error_and_health_says_so() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket(BUCKET);
    let target = "s3://no-such-bucket/edge".to_owned();
    let store = Store::new(&target, &server.endpoint(), refusal_settings());
    refused_permanently(&server, &store, "missing bucket", "NoSuchBucket");
    assert!(server.list_objects(BUCKET, "").is_empty());
}

/// The secret key is wrong (moto's IAM checks on: the key id exists, the signature does not
/// match), and then the key id is unknown too. The right key, read from a shared credentials
/// file under `ship.profile` (none in the environment), ships: the refusals were the keys'.
#[test]
fn wrong_credentials_are_one_clear_error_and_health_says_so() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket(BUCKET);
    let created = server.aws_ok(&["iam", "create-user", "--user-name", "edge"]);
    assert!(created.contains("edge"), "{created}");
    let key = server.aws_ok(&[
        "iam",
        "create-access-key",
        "--user-name",
        "edge",
        "--output",
        "json",
    ]);
    let key: serde_json::Value = serde_json::from_str(&key).expect("create-access-key JSON");
    let key_id = key["AccessKey"]["AccessKeyId"]
        .as_str()
        .expect("AccessKeyId")
        .to_owned();
    let secret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .expect("SecretAccessKey")
        .to_owned();
    server.aws_ok(&[
        "iam",
        "put-user-policy",
        "--user-name",
        "edge",
        "--policy-name",
        "everything",
        "--policy-document",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    ]);
    server.require_auth(true);

    let target = format!("s3://{BUCKET}/creds");
    let mut store = Store::new(&target, &server.endpoint(), refusal_settings());
    store.access_key_id = key_id.clone();
    store.secret_access_key = "not-the-secret".to_owned();
    refused_permanently(&server, &store, "wrong secret key", "SignatureDoesNotMatch");

    let mut store = Store::new(&target, &server.endpoint(), refusal_settings());
    store.access_key_id = "AKIAUNKNOWNKEY000000".to_owned();
    store.secret_access_key = "whatever".to_owned();
    refused_permanently(&server, &store, "unknown access key", "InvalidAccessKeyId");

    server.require_auth(false);
    assert!(
        server.list_objects(BUCKET, "").is_empty(),
        "objects uploaded with wrong credentials"
    );

    // The right key, from a shared credentials file and a profile, with the checks on.
    server.require_auth(true);
    let prefix = "profile";
    let target = format!("s3://{BUCKET}/{prefix}");
    let mut store = Store::new(
        &target,
        &server.endpoint(),
        Settings {
            ship: "profile: edge",
            ..Settings::default()
        },
    );
    let file = store._tmp.path().join("aws-credentials");
    std::fs::write(
        &file,
        format!(
            "[default]\naws_access_key_id = AKIANOTTHISONE000000\naws_secret_access_key = no\n\n\
             [edge]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
        ),
    )
    .unwrap();
    store.credentials_file = Some(file);
    store.put_metrics(6, 3_000);
    let segments = store.segments();
    let out = store.run_ok(&["spool", "ship", "--once"]);
    let total: u64 = segments.iter().map(|s| s.bytes).sum();
    assert_eq!(
        parse_shipped(&out),
        (segments.len() as u64, total, target.clone()),
        "{out}"
    );
    server.require_auth(false);
    let downloads = tempfile::tempdir().unwrap();
    let objects = server.download_all(BUCKET, prefix, downloads.path());
    assert_eq!(objects.len(), segments.len(), "{objects:?}");
    for s in &store.segments() {
        assert_eq!(s.state, "uploaded", "{s:?}");
        assert_eq!(
            objects.get(&default_key(prefix, s)),
            Some(&sha256_file(&store.segment_file(&s.name))),
            "{}",
            s.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Objects already under a segment's key

/// What a crash between upload and acknowledgement leaves (the object, with the shipper's
/// metadata), and the same bytes put there by another client (no metadata), both count as
/// shipped without a second write; other bytes under a segment's key are never overwritten:
/// that segment stays pending and the error names the key. The bucket is versioned, so a
/// second write of any key would show.
#[test]
fn objects_already_there_count_once_and_others_are_never_overwritten() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket(BUCKET);
    server.enable_versioning(BUCKET);
    let prefix = "existing";
    let target = format!("s3://{BUCKET}/{prefix}");
    let store = Store::new(
        &target,
        &server.endpoint(),
        Settings {
            max_records: 500,
            ..Settings::default()
        },
    );
    store.put_metrics(5, 2_000);
    let segments = store.segments();
    assert_eq!(segments.len(), 4, "{segments:?}");
    let path = |s: &Segment| store.segment_file(&s.name).to_str().unwrap().to_owned();
    let key = |s: &Segment| default_key(prefix, s);
    let (crashed, copied, other, fresh) = (&segments[0], &segments[1], &segments[2], &segments[3]);
    let sha = sha256_file(&store.segment_file(&crashed.name));
    server.aws_ok(&[
        "s3api",
        "put-object",
        "--bucket",
        BUCKET,
        "--key",
        &key(crashed),
        "--body",
        &path(crashed),
        "--metadata",
        &format!("sha256={sha}"),
    ]);
    server.aws_ok(&[
        "s3api",
        "put-object",
        "--bucket",
        BUCKET,
        "--key",
        &key(copied),
        "--body",
        &path(copied),
    ]);
    let stranger = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(stranger.path(), b"not a segment").unwrap();
    server.aws_ok(&[
        "s3api",
        "put-object",
        "--bucket",
        BUCKET,
        "--key",
        &key(other),
        "--body",
        stranger.path().to_str().unwrap(),
    ]);

    let out = store.run(&["spool", "ship", "--once"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    eprintln!(
        "ship --once over existing objects ({}):\n{said}",
        out.status
    );
    assert!(
        !out.status.success(),
        "a conflict must fail the run: {said}"
    );
    assert!(
        said.contains(&key(other)),
        "the error must name the conflicting key {}: {said}",
        key(other)
    );
    let (n, bytes, to) = parse_shipped(&text(&out.stdout));
    assert_eq!(to, target);
    assert_eq!(
        (n, bytes),
        (3, crashed.bytes + copied.bytes + fresh.bytes),
        "the identical objects count as shipped: {said}"
    );

    let states: BTreeMap<String, String> = store
        .segments()
        .into_iter()
        .map(|s| (s.name, s.state))
        .collect();
    for s in [crashed, copied, fresh] {
        assert_eq!(states[&s.name], "uploaded", "{}", s.name);
    }
    assert_eq!(states[&other.name], "pending", "{}", other.name);

    // One write per key: ours where the key was free, none where something was there.
    let versions = server.list_versions(BUCKET, prefix);
    let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &versions {
        *per_key.entry(&v.key).or_default() += 1;
    }
    assert_eq!(per_key.len(), 4, "{versions:?}");
    assert!(
        per_key.values().all(|&n| n == 1),
        "a key was written twice: {versions:?}"
    );
    let downloads = tempfile::tempdir().unwrap();
    let objects = server.download_all(BUCKET, prefix, downloads.path());
    for s in [crashed, copied, fresh] {
        assert_eq!(
            objects[&key(s)],
            sha256_file(&store.segment_file(&s.name)),
            "{}",
            key(s)
        );
    }
    assert_eq!(
        objects[&key(other)],
        s3::sha256_hex(b"not a segment"),
        "the other object was overwritten"
    );
}
