//! # The measuring code: written once, used by `edgestore bench` and by the criterion benches
//!
//! Each submodule exposes workloads as plain functions that time one run and return the
//! elapsed time (or per-call latencies). `cargo bench` (benches/edgestore.rs) feeds them to
//! criterion through `iter_custom`; [`run`] repeats them with subject and baseline
//! *interleaved* (subject, baseline, subject, baseline, ...) so machine noise hits both
//! alike, takes medians, and turns them into the performance figures with their targets
//! (`docs/benchmarks.md`).
//!
//! | concept | module |
//! |---|---|
//! | medians, percentiles, deterministic indices | [`stats`] |
//! | runtime and warm component cache shared by host figures | [`fixture`] |
//! | spool ingest against raw Brotli; space savings; the `brotli` CLI | [`spool`] |
//! | repository against raw rusqlite; point operations; host client on both engines | [`repo`] |
//! | peak RSS in a child process | [`memory`] |
//! | remote write through `serve`'s HTTP route against spool put; senders; a flood at the cap | [`ingest`] |
//! | shipping segments to a loopback S3 server against the AWS CLI; CPU per MB | [`ship`] |
//! | restore from that server against the AWS CLI copying it; backup overhead | [`backup`] |
//! | cold compile and warm open of the component | [`startup`] |
//! | the report: figures, status, table and JSON | [`report`] |

pub mod backup;
mod error;
pub mod fixture;
pub mod ingest;
pub mod memory;
pub mod repo;
pub mod report;
pub mod ship;
pub mod spool;
pub mod startup;
pub mod stats;

pub use error::{BenchError, Result};
pub use fixture::{Host, Side};
pub use report::{BenchFigure, BenchReport, BenchStatus};
use stats::{median, percentile, secs};

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Small sizes, one or few reps: proves the machinery in seconds. Its numbers are not the
    /// figures the targets are set for (the memory figures say which row count they used).
    Quick,
    /// The sizes the targets are set for.
    Full,
}

/// A group of figures, for `edgestore bench --only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Group {
    /// Cold compile and warm open of the component.
    Startup,
    /// Spool ingest, raw Brotli, savings.
    Spool,
    /// Repository and boundary figures.
    Repo,
    /// Peak RSS of ingesting and reading back the memory figures' rows.
    Memory,
    /// Remote write through `serve`'s HTTP route, concurrent senders, a flood at the cap.
    Ingest,
    /// Shipping segments to a loopback S3 server against the AWS CLI; CPU per MB.
    Ship,
    /// Restoring a backup from a loopback S3 server against the AWS CLI copying it; what a
    /// running backup costs `create_many`.
    Backup,
}

/// The sizes of one mode.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Interleaved reps of each throughput figure.
    pub reps: usize,
    /// Spool rows at levels 1, 6 and 11.
    pub spool_rows: [usize; 3],
    /// Rows of the create-many figures.
    pub create_many_rows: usize,
    /// Rows already stored for point operations.
    pub point_rows: usize,
    /// Timed reads (gets, finds) per figure.
    pub reads: usize,
    /// Timed writes (single creates, updates) per figure: each commits (fsync).
    pub writes: usize,
    /// Timed empty calls and 1 KB round trips; 1 MB round trips are a tenth.
    pub calls: usize,
    /// Rows of the memory figures.
    pub memory_rows: u64,
    /// Cold compiles, warm opens.
    pub startups: (usize, usize),
    /// Samples of the remote write throughput figures (requests of 2,000), per rep.
    pub remote_write_samples: usize,
    /// Requests each of the [`ingest::SENDERS`] concurrent senders sends.
    pub requests_per_sender: usize,
    /// How long the senders flood the spool at its byte cap.
    pub flood: std::time::Duration,
    /// Rows of each spool segment the ship figures upload (level 1), oldest first.
    pub ship_segment_rows: &'static [usize],
    /// Size of the database the restore figures restore, MB (it names them).
    pub backup_db_mb: u64,
}

impl Sizes {
    /// The sizes of `mode`.
    pub fn of(mode: Mode) -> Sizes {
        match mode {
            Mode::Quick => Sizes {
                reps: 1,
                spool_rows: [10_000, 10_000, 2_000],
                create_many_rows: 10_000,
                point_rows: 10_000,
                reads: 1_000,
                writes: 20,
                calls: 200,
                memory_rows: 100_000,
                startups: (1, 3),
                remote_write_samples: 10_000,
                requests_per_sender: 2,
                flood: std::time::Duration::from_millis(500),
                ship_segment_rows: &[20_000, 20_000, 20_000],
                backup_db_mb: 10,
            },
            Mode::Full => Sizes {
                reps: 5,
                spool_rows: [500_000, 100_000, 10_000],
                create_many_rows: 100_000,
                point_rows: 100_000,
                reads: 20_000,
                writes: 300,
                calls: 5_000,
                memory_rows: 10_000_000,
                startups: (3, 20),
                remote_write_samples: 100_000,
                requests_per_sender: 25,
                flood: std::time::Duration::from_secs(3),
                ship_segment_rows: &ship::FULL_SEGMENT_ROWS,
                backup_db_mb: 100,
            },
        }
    }
}

/// A target: the median must be at least / at most `bound`.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

/// Collects figures in measuring order.
struct Figures {
    list: Vec<BenchFigure>,
    progress: Box<dyn FnMut(&BenchFigure)>,
}

impl Figures {
    fn add(&mut self, figure: &str, value: f64, unit: &str, target: Option<Target>, note: String) {
        let (target_text, status) = match target {
            None => (String::new(), BenchStatus::Info),
            Some(Target::AtLeast(b)) => (format!(">= {b}"), pass(value >= b)),
            Some(Target::AtMost(b)) => (format!("<= {b}"), pass(value <= b)),
        };
        let f = BenchFigure {
            figure: figure.into(),
            value: Some(value),
            unit: unit.into(),
            target: target_text,
            status,
            note,
        };
        (self.progress)(&f);
        self.list.push(f);
    }

    fn skip(&mut self, figure: &str, unit: &str, target: Option<Target>, note: String) {
        let target = match target {
            None => String::new(),
            Some(Target::AtLeast(b)) => format!(">= {b}"),
            Some(Target::AtMost(b)) => format!("<= {b}"),
        };
        let f = BenchFigure {
            figure: figure.into(),
            value: None,
            unit: unit.into(),
            target,
            status: BenchStatus::Skip,
            note,
        };
        (self.progress)(&f);
        self.list.push(f);
    }
}

fn pass(ok: bool) -> BenchStatus {
    if ok {
        BenchStatus::Pass
    } else {
        BenchStatus::Miss
    }
}

const MB: f64 = 1e6;
/// Rows of the hot working set of the read-cache figures.
const HOT_ROWS: usize = 1_000;

/// Keys per `get_many` batch in the repository figures (an agent checking a page of resources).
const GET_MANY_BATCH: usize = 100;
const US: f64 = 1e6;

/// Run the figures of `mode` in `only` (every group when empty); `progress` sees each figure
/// as soon as it is measured.
pub fn run(
    mode: Mode,
    only: &[Group],
    progress: impl FnMut(&BenchFigure) + 'static,
) -> Result<BenchReport> {
    let wanted = |g: Group| only.is_empty() || only.contains(&g);
    let sizes = Sizes::of(mode);
    let load_before = load_1min();
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut f = Figures {
        list: Vec::new(),
        progress: Box::new(progress),
    };
    let host = Host::new()?;

    // Start-up first: the first cold compile also fills the cache every component figure
    // below opens from.
    let cold = vec![secs(startup::cold_compile(Some(host.cache_dir()))?)];
    if wanted(Group::Startup) {
        startup_figures(&mut f, &host, &sizes, cold)?;
    }
    if wanted(Group::Spool) {
        spool_figures(&mut f, &host, &sizes)?;
    }
    if wanted(Group::Repo) {
        repo_figures(&mut f, &host, &sizes)?;
    }
    if wanted(Group::Memory) {
        memory_figures(&mut f, &sizes)?;
    }
    if wanted(Group::Ingest) {
        ingest_figures(&mut f, &host, &sizes)?;
    }
    if wanted(Group::Ship) {
        ship_figures(&mut f, &host, &sizes)?;
    }
    if wanted(Group::Backup) {
        backup_figures(&mut f, &host, &sizes)?;
    }

    Ok(BenchReport {
        mode: match (mode, only.is_empty()) {
            (Mode::Quick, true) => "quick".into(),
            (Mode::Full, true) => "full".into(),
            (m, false) => format!(
                "{} (only {})",
                if m == Mode::Quick { "quick" } else { "full" },
                only.iter()
                    .map(|g| format!("{g:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        date,
        machine: machine(),
        load: format!("{load_before} -> {}", load_1min()),
        figures: f.list,
    })
}

fn startup_figures(f: &mut Figures, host: &Host, sizes: &Sizes, mut cold: Vec<f64>) -> Result<()> {
    for _ in 1..sizes.startups.0 {
        cold.push(secs(startup::cold_compile(None)?));
    }
    let warm: Vec<f64> = (0..sizes.startups.1)
        .map(|_| startup::warm_open(host).map(secs))
        .collect::<Result<_>>()?;
    f.add(
        "startup.cold_compile",
        median(&cold) * 1e3,
        "ms",
        None,
        format!("median of {}", cold.len()),
    );
    f.add(
        "startup.warm_open",
        median(&warm) * 1e3,
        "ms",
        Some(Target::AtMost(10.0)),
        format!(
            "Store::open from the compiled cache, median of {}",
            warm.len()
        ),
    );
    Ok(())
}

fn spool_figures(f: &mut Figures, host: &Host, sizes: &Sizes) -> Result<()> {
    for (i, level) in [1u32, 6, 11].into_iter().enumerate() {
        let w = spool::IngestWorkload::new(sizes.spool_rows[i], level);
        // An untimed warm-up run provides the exact bytes the baseline compresses.
        let segments = w.native()?.segments()?;
        let json = segments.json_bytes() as f64;
        // Brotli compiled to wasm (the standalone world compresses in the guest), beside the
        // plugin world whose host compresses; warmed up once (its first open compiles it).
        let standalone = fixture::standalone_file().is_some();
        if standalone {
            w.host(host, Side::Standalone)?;
        }
        let (mut native, mut raw, mut raw_c, mut comp, mut two) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut alone = Vec::new();
        // The native engine through the host client: the component's baseline without the
        // client's own cost, and (at level 6) the audit figure's log-off run.
        let (mut host_native, mut audited) = (Vec::new(), Vec::new());
        let (mut plain, mut encrypted) = (Vec::new(), Vec::new());
        for _ in 0..sizes.reps {
            native.push(secs(w.native()?.elapsed));
            raw.push(secs(spool::raw_brotli(&segments, level)?.0));
            raw_c.push(secs(spool::raw_local_encoder(&segments, level)?.0));
            comp.push(secs(w.host(host, Side::Component)?));
            host_native.push(secs(w.host_audited(host, Side::Native, false)?));
            if standalone {
                alone.push(secs(w.host(host, Side::Standalone)?));
            }
            if level == 6 {
                two.push(secs(w.native_two_workers()?.elapsed));
                audited.push(secs(w.host_audited(host, Side::Native, true)?));
                plain.push(secs(w.native()?.elapsed));
                encrypted.push(secs(w.native_encrypted()?.elapsed));
            }
        }
        let (n, r, c) = (median(&native), median(&raw), median(&comp));
        let rows = w.rows as f64;
        let note = format!(
            "{} rows, {:.1} MB JSON, {} reps",
            w.rows,
            json / MB,
            sizes.reps
        );
        f.add(
            &format!("spool.ingest.native.l{level}.metrics_per_s"),
            rows / n,
            "rows/s",
            None,
            note.clone(),
        );
        f.add(
            &format!("spool.ingest.native.l{level}.mb_per_s"),
            json / n / MB,
            "MB/s",
            None,
            note.clone(),
        );
        f.add(
            &format!("spool.raw_brotli.l{level}.mb_per_s"),
            json / r / MB,
            "MB/s",
            None,
            "brotli crate, same segment JSON, same quality, the spool's window and size hint"
                .into(),
        );
        f.add(
            &format!("spool.ingest.native.l{level}.vs_raw"),
            r / n,
            "x",
            Some(Target::AtLeast(0.9)),
            "native ingest rate / raw Brotli rate, one worker".into(),
        );
        let rc = median(&raw_c);
        f.add(
            &format!("spool.raw_brotli_c.l{level}.mb_per_s"),
            json / rc / MB,
            "MB/s",
            None,
            "Google's C encoder (what segments are written with), same JSON, same parameters, \
             one write per segment"
                .into(),
        );
        f.add(
            &format!("spool.ingest.native.l{level}.vs_raw_c"),
            rc / n,
            "x",
            None,
            "native ingest rate / raw C encoder rate: the spool's own share (JSON, journal, \
             fsyncs)"
                .into(),
        );
        if level == 6 {
            let t = median(&two);
            f.add(
                "spool.ingest.native_2_workers.l6.metrics_per_s",
                rows / t,
                "rows/s",
                None,
                note.clone(),
            );
            f.add(
                "spool.ingest.native_2_workers.l6.vs_raw",
                r / t,
                "x",
                Some(Target::AtLeast(1.6)),
                "FinishWorker compressing rotated segments on a second thread / raw Brotli on \
                 one core"
                    .into(),
            );
            let (off, on) = (median(&plain), median(&encrypted));
            f.add(
                "spool.ingest.native.l6.encryption_on_vs_off",
                off / on,
                "x",
                Some(Target::AtLeast(0.95)),
                format!(
                    "spool put (core, one worker) with every segment encrypted to one age \
                     X25519 recipient / plain, interleaved; {:.0} rows/s plain",
                    w.rows as f64 / off
                ),
            );
            let (off, on) = (median(&host_native), median(&audited));
            f.add(
                "spool.ingest.host_native.l6.audit_on_vs_off",
                off / on,
                "x",
                Some(Target::AtLeast(0.95)),
                format!(
                    "spool put through the host client (native engine) with the audit log on \
                     (one chained line per put of {} rows, HEAD replaced each time) / off, \
                     interleaved; {:.0} rows/s off",
                    spool::BATCH,
                    w.rows as f64 / off
                ),
            );
        }
        f.add(
            &format!("spool.ingest.component.l{level}.metrics_per_s"),
            rows / c,
            "rows/s",
            None,
            note,
        );
        f.add(
            &format!("spool.ingest.component.l{level}.vs_native"),
            n / c,
            "x",
            Some(Target::AtLeast(0.8)),
            "plugin component (its host compresses) rate / native rate, same level".into(),
        );
        let hn = median(&host_native);
        f.add(
            &format!("spool.ingest.component.l{level}.vs_host_native"),
            hn / c,
            "x",
            None,
            format!(
                "plugin component rate / native engine rate, both through the host client: \
                 the component's own cost; {:.0} rows/s native engine",
                rows / hn
            ),
        );
        let figure = format!("spool.ingest.standalone.l{level}.vs_native");
        let target = Some(Target::AtLeast(0.5));
        if standalone {
            let a = median(&alone);
            f.add(
                &figure,
                n / a,
                "x",
                target,
                format!(
                    "standalone component (Brotli compiled to wasm) rate / native rate, same \
                     level; {:.0} rows/s",
                    rows / a
                ),
            );
        } else {
            f.skip(
                &figure,
                "x",
                target,
                format!(
                    "no standalone component: build it (the tests do) or set {}",
                    fixture::STANDALONE_ENV
                ),
            );
        }
        if level == 6 {
            f.add(
                "spool.savings.l6",
                segments.savings() * 100.0,
                "%",
                Some(Target::AtLeast(85.0)),
                format!(
                    "{} -> {} bytes, MetricGenerator seed 2024",
                    segments.json_bytes(),
                    segments.compressed_bytes
                ),
            );
            match spool::brotli_cli_bytes(&segments, 6)? {
                Some(cli) => f.add(
                    "spool.savings.l6.vs_brotli_cli",
                    segments.compressed_bytes as f64 / cli as f64,
                    "x",
                    Some(Target::AtMost(1.0)),
                    format!(
                        "our bytes / `brotli -q 6` bytes ({} vs {cli})",
                        segments.compressed_bytes
                    ),
                ),
                None => f.skip(
                    "spool.savings.l6.vs_brotli_cli",
                    "x",
                    Some(Target::AtMost(1.0)),
                    "the brotli CLI is not on PATH".into(),
                ),
            }
        }
    }
    Ok(())
}

fn repo_figures(f: &mut Figures, host: &Host, sizes: &Sizes) -> Result<()> {
    let cm = repo::CreateMany::new(sizes.create_many_rows)?;
    let rows = cm.rows.len() as f64;
    let (mut native, mut raw, mut h_native, mut h_comp, mut encrypted) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let cipher = edgestore::sql::sqlite::cipher::available();
    for _ in 0..sizes.reps {
        native.push(secs(cm.native()?));
        if cipher {
            encrypted.push(secs(cm.native_encrypted()?));
        }
        raw.push(secs(cm.raw()?));
        h_native.push(secs(cm.host(host, Side::Native)?));
        h_comp.push(secs(cm.host(host, Side::Component)?));
    }
    let note = format!(
        "{} rows, one transaction, {} reps",
        cm.rows.len(),
        sizes.reps
    );
    f.add(
        "repo.create_many.native.rows_per_s",
        rows / median(&native),
        "rows/s",
        None,
        note.clone(),
    );
    f.add(
        "repo.create_many.raw_rusqlite.rows_per_s",
        rows / median(&raw),
        "rows/s",
        None,
        "same DDL and bound values, one prepared statement".into(),
    );
    f.add(
        "repo.create_many.native.vs_raw",
        median(&raw) / median(&native),
        "x",
        Some(Target::AtLeast(0.85)),
        "repository rate / raw rusqlite rate".into(),
    );
    if cipher {
        f.add(
            "repo.create_many.native.sqlcipher_vs_plain",
            median(&native) / median(&encrypted),
            "x",
            None,
            format!(
                "the repository on an encrypted database (SQLCipher {}, raw key) / plain, \
                 interleaved; {:.0} rows/s encrypted",
                edgestore::sql::sqlite::cipher::version().unwrap_or_default(),
                rows / median(&encrypted)
            ),
        );
    }
    f.add(
        "repo.create_many.component.rows_per_s",
        rows / median(&h_comp),
        "rows/s",
        None,
        note,
    );
    f.add(
        "repo.create_many.component.vs_native",
        median(&h_native) / median(&h_comp),
        "x",
        Some(Target::AtLeast(0.5)),
        "through the host client, component rate / native-engine rate".into(),
    );

    let mut p = repo::Points::new(sizes.point_rows)?;
    let (mut off, mut on, mut hot_off, mut hot_on) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut raw, mut many) = (Vec::new(), Vec::new());
    // Interleave cache off and on in slices so both see the same machine.
    let slices = 10usize;
    let hot = HOT_ROWS.min(sizes.point_rows);
    for s in 0..slices {
        off.extend(p.get(sizes.reads / slices, false, s as u64)?);
        on.extend(p.get(sizes.reads / slices, true, s as u64)?);
        hot_off.extend(p.get_hot(hot, sizes.reads / slices, false, s as u64)?);
        hot_on.extend(p.get_hot(hot, sizes.reads / slices, true, s as u64)?);
        raw.extend(p.get_raw(sizes.reads / slices, s as u64)?);
        many.extend(p.get_many(sizes.reads / slices, GET_MANY_BATCH, s as u64)?);
    }
    let note = format!("{} stored rows, {} gets", sizes.point_rows, off.len());
    let hot_note = format!(
        "keys drawn from {hot} of {} rows (read once first), {} gets",
        sizes.point_rows,
        hot_off.len()
    );
    f.add(
        "repo.get.native.p50",
        median(&off) * US,
        "us",
        Some(Target::AtMost(5.0)),
        note.clone(),
    );
    f.add(
        "repo.get.native.p99",
        percentile(&off, 0.99) * US,
        "us",
        None,
        note.clone(),
    );
    f.add(
        "repo.get.raw_rusqlite.p50",
        median(&raw) * US,
        "us",
        None,
        "the repository's SELECT on a bare rusqlite connection to the same file (reader \
         pragmas, statement cached, columns read into owned values): SQLite's own floor"
            .into(),
    );
    f.add(
        "repo.get.native.vs_raw",
        median(&raw) / median(&off),
        "x",
        None,
        "raw p50 / repository p50 (1.0: the repository adds nothing)".into(),
    );
    f.add(
        "repo.get_many.native.per_key.p50",
        median(&many) * US,
        "us",
        None,
        format!(
            "get_many of {GET_MANY_BATCH} random keys (one read transaction) / {GET_MANY_BATCH}, \
             {} batches",
            many.len()
        ),
    );
    f.add(
        "repo.get.cache_on.p50",
        median(&on) * US,
        "us",
        None,
        note.clone(),
    );
    f.add(
        "repo.get.cache_off.vs_on",
        median(&off) / median(&on),
        "x",
        None,
        "cache-off p50 / cache-on p50, keys uniform over all rows (mostly misses)".into(),
    );
    f.add(
        "repo.get.hot.cache_off.p50",
        median(&hot_off) * US,
        "us",
        None,
        hot_note.clone(),
    );
    f.add(
        "repo.get.hot.cache_on.p50",
        median(&hot_on) * US,
        "us",
        None,
        hot_note,
    );
    f.add(
        "repo.get.hot.cache_off.vs_on",
        median(&hot_off) / median(&hot_on),
        "x",
        None,
        "cache-off p50 / cache-on p50 on the hot set (the speed-up of the read cache)".into(),
    );
    let find = p.find_indexed(sizes.reads / 4, 11)?;
    f.add(
        "repo.find_indexed.native.p50",
        median(&find) * US,
        "us",
        None,
        format!("eq on indexed sent_at, one row, {} finds", find.len()),
    );
    let create = p.create(sizes.writes)?;
    f.add(
        "repo.create.native.p50",
        median(&create) * US,
        "us",
        None,
        format!(
            "one row per commit (WAL, synchronous=FULL), {}",
            create.len()
        ),
    );
    let update = p.update(sizes.writes, 12)?;
    f.add(
        "repo.update.native.p50",
        median(&update) * US,
        "us",
        None,
        format!(
            "one row per commit (WAL, synchronous=FULL), {}",
            update.len()
        ),
    );
    drop(p);

    // Host client: both engines over the same rows, interleaved in slices.
    let hn = repo::HostPoints::new(host, Side::Native, sizes.point_rows)?;
    let hc = repo::HostPoints::new(host, Side::Component, sizes.point_rows)?;
    let (mut gn, mut gc, mut pn, mut pc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut kn, mut kc, mut mn, mut mc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut gmn, mut gmc) = (Vec::new(), Vec::new());
    let big = (sizes.calls / 10).max(1);
    for s in 0..slices {
        gn.extend(hn.get(host, sizes.reads / slices, s as u64)?);
        gc.extend(hc.get(host, sizes.reads / slices, s as u64)?);
        gmn.extend(hn.get_many(host, sizes.reads / slices, GET_MANY_BATCH, s as u64)?);
        gmc.extend(hc.get_many(host, sizes.reads / slices, GET_MANY_BATCH, s as u64)?);
        pn.extend(hn.ping(host, sizes.calls / slices)?);
        pc.extend(hc.ping(host, sizes.calls / slices)?);
        kn.extend(hn.round_trip(host, 1 << 10, (sizes.calls / slices / 10).max(1))?);
        kc.extend(hc.round_trip(host, 1 << 10, (sizes.calls / slices / 10).max(1))?);
        mn.extend(hn.round_trip(host, 1 << 20, (big / slices).max(1))?);
        mc.extend(hc.round_trip(host, 1 << 20, (big / slices).max(1))?);
    }
    hn.close(host)?;
    hc.close(host)?;
    f.add(
        "repo.get.host_native.p50",
        median(&gn) * US,
        "us",
        None,
        "through the host client (a hop to the store's thread)".into(),
    );
    f.add(
        "repo.get.component.p50",
        median(&gc) * US,
        "us",
        Some(Target::AtMost(10.0)),
        format!("through the host client, {} gets", gc.len()),
    );
    f.add(
        "repo.get_many.host_native.per_key.p50",
        median(&gmn) * US,
        "us",
        None,
        format!(
            "get_many of {GET_MANY_BATCH} random keys through the host client / {GET_MANY_BATCH}"
        ),
    );
    f.add(
        "repo.get_many.component.per_key.p50",
        median(&gmc) * US,
        "us",
        None,
        format!(
            "get_many of {GET_MANY_BATCH} random keys through the host client / {GET_MANY_BATCH}, \
             {} batches",
            gmc.len()
        ),
    );
    let pairs = [
        ("boundary.empty_call", &pn, &pc, "ping".to_string()),
        (
            "boundary.round_trip_1kb",
            &kn,
            &kc,
            format!("upsert + get of a row carrying 1 KiB, {} each", kn.len()),
        ),
        (
            "boundary.round_trip_1mb",
            &mn,
            &mc,
            format!("upsert + get of a row carrying 1 MiB, {} each", mn.len()),
        ),
    ];
    for (name, nat, comp, note) in pairs {
        f.add(
            &format!("{name}.native.p50"),
            median(nat) * US,
            "us",
            None,
            note.clone(),
        );
        f.add(
            &format!("{name}.component.p50"),
            median(comp) * US,
            "us",
            None,
            note,
        );
        f.add(
            &format!("{name}.component.vs_native"),
            median(comp) / median(nat),
            "x",
            None,
            "component time / native-engine time".into(),
        );
    }
    Ok(())
}

fn memory_figures(f: &mut Figures, sizes: &Sizes) -> Result<()> {
    let dir = fixture::tempdir()?;
    let rows = sizes.memory_rows;
    let label = if rows >= 1_000_000 {
        format!("{}m", rows / 1_000_000)
    } else {
        format!("{}k", rows / 1_000)
    };
    let ingest = memory::peak_rss(memory::Work::Ingest, rows, dir.path())?;
    f.add(
        &format!("memory.ingest_{label}.peak_rss"),
        ingest.bytes as f64 / (1u64 << 20) as f64,
        "MiB",
        Some(Target::AtMost(128.0)),
        format!(
            "VmHWM of a child ingesting {rows} rows at level {} in {:.1} s",
            memory::MEMORY_LEVEL,
            secs(ingest.elapsed)
        ),
    );
    let read = memory::peak_rss(memory::Work::Read, rows, dir.path())?;
    f.add(
        &format!("memory.read_{label}.peak_rss"),
        read.bytes as f64 / (1u64 << 20) as f64,
        "MiB",
        Some(Target::AtMost(64.0)),
        format!(
            "VmHWM of a child streaming {rows} rows back in {:.1} s",
            secs(read.elapsed)
        ),
    );
    Ok(())
}

/// Bound on the resident set's growth while senders flood a spool at its byte cap, MiB.
/// Refused requests are answered before their bodies are read, so the growth is the flood's
/// fixed cost: [`ingest::FLOOD_SENDERS`] connections with their buffers on both ends (hyper
/// reads at most ~400 KiB ahead per connection, 16 x 0.4 = 6.4 MiB at worst) and the sender
/// tasks; it must not grow with the number of requests. Decoding the refused requests instead
/// would hold 16 decoded 2,000-sample requests (~3 MiB each in rows) at once, ~50 MiB.
const FLOOD_RSS_GROWTH_MIB: f64 = 8.0;

fn ingest_figures(f: &mut Figures, host: &Host, sizes: &Sizes) -> Result<()> {
    let w = ingest::RemoteWrite::new(sizes.remote_write_samples, ingest::LEVEL)?;
    let samples = w.samples as f64;
    let (mut http_n, mut put_n, mut http_c, mut put_c, mut decode) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..sizes.reps {
        http_n.push(secs(w.http(host, Side::Native)?));
        put_n.push(secs(w.put(host, Side::Native)?));
        decode.push(secs(w.decode()?));
        http_c.push(secs(w.http(host, Side::Component)?));
        put_c.push(secs(w.put(host, Side::Component)?));
    }
    let note = format!(
        "{} requests of {} samples ({:.1} MB snappy), level {}, ingest.sync interval, \
         one sender, {} reps",
        w.requests(),
        ingest::SAMPLES_PER_REQUEST,
        w.body_bytes() as f64 / MB,
        w.level,
        sizes.reps
    );
    for (side, http, put) in [
        (Side::Native, &http_n, &put_n),
        (Side::Component, &http_c, &put_c),
    ] {
        let (h, p) = (median(http), median(put));
        let name = side.name();
        f.add(
            &format!("ingest.remote_write.{name}.l{}.samples_per_s", w.level),
            samples / h,
            "samples/s",
            None,
            note.clone(),
        );
        f.add(
            &format!("ingest.spool_put.{name}.l{}.rows_per_s", w.level),
            samples / p,
            "rows/s",
            None,
            "the rows the server decodes, same 2,000-row batches, host client put + flush".into(),
        );
        f.add(
            &format!("ingest.remote_write.{name}.l{}.vs_put", w.level),
            p / h,
            "x",
            Some(Target::AtLeast(0.9)),
            "POST /api/v1/write rate / spool put rate, same engine, same rows".into(),
        );
    }

    f.add(
        "ingest.remote_write.decode.samples_per_s",
        samples / median(&decode),
        "samples/s",
        None,
        "the server's decoder alone on the same bodies (snappy, protobuf, one row per sample), \
         one thread: its share of a request is put rate / this rate"
            .into(),
    );

    let c = w.concurrent(
        host,
        Side::Native,
        ingest::SENDERS,
        sizes.requests_per_sender,
    )?;
    let note = format!(
        "{} senders x {} requests of {} samples, ingest.sync request (group commit), level {}; \
         {:.0} samples/s overall",
        ingest::SENDERS,
        sizes.requests_per_sender,
        ingest::SAMPLES_PER_REQUEST,
        w.level,
        c.samples as f64 / secs(c.elapsed)
    );
    f.add(
        "ingest.remote_write.native.8_senders.p50",
        median(&c.latencies) * 1e3,
        "ms",
        None,
        note.clone(),
    );
    f.add(
        "ingest.remote_write.native.8_senders.p99",
        percentile(&c.latencies, 0.99) * 1e3,
        "ms",
        None,
        note,
    );

    let dir = fixture::tempdir()?;
    let flood = ingest::flood_rss(sizes.flood, dir.path())?;
    // The child fails on any answer but 429; none at all would not be a flood.
    if flood.refused == 0 {
        return Err(BenchError::Check(
            "the flood at the byte cap got no 429: not a refused flood".into(),
        ));
    }
    let mib = (1u64 << 20) as f64;
    f.add(
        "ingest.flood_429.16_senders.rss_growth",
        flood.growth_bytes as f64 / mib,
        "MiB",
        Some(Target::AtMost(FLOOD_RSS_GROWTH_MIB)),
        format!(
            "peak VmRSS over {:.1} s of {} senders against a spool at its {} MiB cap, minus \
             {:.1} MiB before (a child process, sampled every ms)",
            secs(flood.elapsed),
            ingest::FLOOD_SENDERS,
            ingest::FLOOD_CAP_BYTES >> 20,
            flood.before_bytes as f64 / mib
        ),
    );
    f.add(
        "ingest.flood_429.16_senders.refused",
        flood.refused as f64,
        "requests",
        None,
        format!(
            "429s in {:.1} s ({:.0}/s), no other answer; {} requests failed on the connection \
             instead{}",
            secs(flood.elapsed),
            flood.refused as f64 / secs(flood.elapsed),
            flood.failed,
            flood
                .first_failure
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        ),
    );
    Ok(())
}

/// Samples of the remote write load the ship figures run under (cycled, requests of 2,000).
const SHIP_LOAD_SAMPLES: usize = 20_000;

/// How long that load runs before the upload starts, so the upload meets it in full swing.
const SHIP_LOAD_WARM_UP: std::time::Duration = std::time::Duration::from_millis(300);

fn ship_figures(f: &mut Figures, host: &Host, sizes: &Sizes) -> Result<()> {
    let Some(venv) = ship::venv() else {
        let note = ship::missing_venv_note();
        for (name, unit, target) in [
            ("ship.s3.mb_per_s", "MB/s", None),
            ("ship.s3.aws_cli.mb_per_s", "MB/s", None),
            ("ship.s3.vs_aws_cli", "x", Some(Target::AtLeast(0.9))),
            ("ship.s3.cpu_ms_per_mb", "ms/MB", None),
            ("ship.s3.cpu_ms_per_mb.during_ingest", "ms/MB", None),
        ] {
            f.skip(name, unit, target, note.clone());
        }
        return Ok(());
    };
    let w = ship::Workload::new(sizes.ship_segment_rows)?;
    let server = ship::S3Server::start(&venv)?;
    server.create_bucket()?;
    let aws_version = server.aws_version();
    let load = ingest::RemoteWrite::new(SHIP_LOAD_SAMPLES, ingest::LEVEL)?;
    let concurrency = crate::ship::ShipConfig::default().concurrency;
    let (mut ours, mut aws, mut busy, mut load_rates, mut aws_fixed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..sizes.reps {
        let prefixes = [
            format!("ours-{rep}"),
            format!("aws-{rep}"),
            format!("ours-busy-{rep}"),
        ];
        ours.push(w.ours(&server, &prefixes[0], concurrency)?);
        aws.push(w.aws_cli(&server, &prefixes[1])?);
        aws_fixed.push(server.aws_fixed_cost()?);
        let running = load.load(host)?;
        std::thread::sleep(SHIP_LOAD_WARM_UP);
        let shipped = w.ours(&server, &prefixes[2], concurrency);
        let stopped = running.stop(host);
        busy.push(shipped?);
        let (samples, elapsed) = stopped?;
        load_rates.push(samples as f64 / secs(elapsed));
        // Checked by a client that is not ours, then cleared: every rep meets the same server.
        let listing = server.objects()?;
        for prefix in &prefixes {
            w.check_uploaded(&listing, prefix)?;
        }
        server.empty_bucket()?;
    }
    drop(server);

    let mb = w.bytes() as f64 / MB;
    let med = |runs: &[ship::Run], of: fn(&ship::Run) -> std::time::Duration| {
        median(&runs.iter().map(|r| secs(of(r))).collect::<Vec<_>>())
    };
    let (o, a, b) = (
        med(&ours, |r| r.wall),
        med(&aws, |r| r.wall),
        med(&busy, |r| r.wall),
    );
    let round = med(&ours, |r| r.round.unwrap_or_default());
    let per_mb =
        |runs: &[ship::Run], of: fn(&ship::Run) -> std::time::Duration| med(runs, of) * 1e3 / mb;
    let workload = format!(
        "{} segments ({} over the {} MiB part size), {:.1} MB, level {}, {} reps",
        w.count(),
        w.multipart(),
        crate::ship::DEFAULT_PART_SIZE >> 20,
        mb,
        ship::LEVEL,
        sizes.reps
    );
    f.add(
        "ship.s3.mb_per_s",
        mb / o,
        "MB/s",
        None,
        format!(
            "`spool ship --once` as a child process to moto on loopback, whole process timed, \
             {o:.2} s (its round alone {round:.2} s); ship.concurrency {concurrency} (default), \
             {} MiB parts; {workload}",
            crate::ship::DEFAULT_PART_SIZE >> 20
        ),
    );
    f.add(
        "ship.s3.aws_cli.mb_per_s",
        mb / a,
        "MB/s",
        None,
        format!(
            "{aws_version} `s3 cp --recursive` of the same files to the same server, whole \
             process timed, {a:.2} s (its start-up and one request, `aws s3 ls`: {:.2} s, {:.2} \
             s CPU); {} concurrent requests, 8 MiB chunks (its defaults)",
            med(&aws_fixed, |r| r.wall),
            med(&aws_fixed, |r| r.cpu),
            ship::AWS_CLI_CONCURRENCY
        ),
    );
    f.add(
        "ship.s3.vs_aws_cli",
        a / o,
        "x",
        Some(Target::AtLeast(0.9)),
        format!(
            "our rate / the AWS CLI's, interleaved; moto's CPU: {:.1} ms/MB, {:.0} % of a core \
             during ours, {:.1} ms/MB, {:.0} % during the AWS CLI's",
            per_mb(&ours, |r| r.server_cpu),
            med(&ours, |r| r.server_cpu) / o * 100.0,
            per_mb(&aws, |r| r.server_cpu),
            med(&aws, |r| r.server_cpu) / a * 100.0
        ),
    );
    f.add(
        "ship.s3.cpu_ms_per_mb",
        per_mb(&ours, |r| r.cpu),
        "ms/MB",
        None,
        format!(
            "user + sys of the whole child (start-up included) per MB shipped; the AWS CLI's \
             {:.1} ms/MB",
            per_mb(&aws, |r| r.cpu)
        ),
    );
    f.add(
        "ship.s3.cpu_ms_per_mb.during_ingest",
        per_mb(&busy, |r| r.cpu),
        "ms/MB",
        None,
        format!(
            "the same while one sender posts remote write back to back to an in-process serve \
             listener (native, level {}, {:.0} samples/s); the upload at {:.1} MB/s",
            ingest::LEVEL,
            median(&load_rates),
            mb / b
        ),
    );
    Ok(())
}

/// A restore figure's name: named by the database's size, so a quick run's cannot be taken
/// for the full one's.
fn restore_figure(sizes: &Sizes, suffix: &str) -> String {
    format!("backup.restore_{}mb{suffix}", sizes.backup_db_mb)
}

fn backup_figures(f: &mut Figures, host: &Host, sizes: &Sizes) -> Result<()> {
    match ship::venv() {
        Some(venv) => restore_figures(f, host, sizes, &venv)?,
        None => {
            let note = ship::missing_venv_note();
            for (suffix, unit) in [(".s", "s"), (".aws_cli_copy.s", "s"), (".vs_aws_cli", "x")] {
                f.skip(&restore_figure(sizes, suffix), unit, None, note.clone());
            }
        }
    }

    let cm = repo::CreateMany::new(sizes.create_many_rows)?;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..sizes.reps {
        without.push(secs(backup::create_many(host, &cm, false)?));
        with.push(secs(backup::create_many(host, &cm, true)?));
    }
    let rows = cm.rows.len() as f64;
    let (w, o) = (median(&with), median(&without));
    f.add(
        "backup.create_many.native.with_backup.rows_per_s",
        rows / w,
        "rows/s",
        None,
        format!(
            "{} rows, one transaction, host client on the native engine, while a BackupRunner \
             runs (`run`, interval 1 s) on the store's data directory to a file:// target (no \
             moto needed); each commit's new log frames are read by the committing thread \
             (commit hooks), and that is timed; the backup restored afterwards holds every \
             row; {} reps",
            cm.rows.len(),
            sizes.reps
        ),
    );
    f.add(
        "backup.create_many.native.vs_without",
        o / w,
        "x",
        Some(Target::AtLeast(0.9)),
        format!(
            "rate with the backup running / rate without ({:.0} rows/s), same rows, a fresh \
             store each, interleaved; the backup's read transaction also keeps SQLite's \
             passive checkpoint after the commit from copying the transaction's pages, which \
             the call does without a backup: the runner copies them later, off the \
             committing thread",
            rows / o
        ),
    );
    Ok(())
}

fn restore_figures(
    f: &mut Figures,
    host: &Host,
    sizes: &Sizes,
    venv: &std::path::Path,
) -> Result<()> {
    let server = ship::S3Server::start(venv)?;
    server.create_bucket()?;
    let aws_version = server.aws_version();
    let w = backup::RestoreWorkload::new(host, &server, sizes.backup_db_mb * 1_000_000)?;
    let (mut ours, mut aws, mut aws_fixed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..sizes.reps {
        ours.push(w.ours(&server)?);
        aws.push(w.aws_cli(&server)?);
        aws_fixed.push(server.aws_fixed_cost()?);
    }
    drop(server);

    let med = |runs: &[ship::Run], of: fn(&ship::Run) -> std::time::Duration| {
        median(&runs.iter().map(|r| secs(of(r))).collect::<Vec<_>>())
    };
    let (o, a) = (med(&ours, |r| r.wall), med(&aws, |r| r.wall));
    let name = |suffix: &str| restore_figure(sizes, suffix);
    f.add(
        &name(".s"),
        o,
        "s",
        None,
        format!(
            "a measuring child doing `edgestore restore`'s work (backup::restore of the latest \
             point into a fresh directory: download, SHA-256 of every object, pages applied, \
             sync, PRAGMA integrity_check) from moto on loopback, whole process timed; the \
             restore call alone {:.2} s; {:.2} s CPU (whole process); a {:.1} MB database \
             ({} rows of ~1 KB, one index): snapshot + {} increments of {} one-row \
             transactions; each rep's restored file holds every row; {} reps",
            med(&ours, |r| r.round.unwrap_or_default()),
            med(&ours, |r| r.cpu),
            w.db_bytes as f64 / MB,
            w.rows,
            backup::INCREMENTS,
            backup::TRANSACTIONS_PER_INCREMENT,
            sizes.reps
        ),
    );
    f.add(
        &name(".aws_cli_copy.s"),
        a,
        "s",
        None,
        format!(
            "{aws_version} `s3 cp --recursive` of the same generation's {} objects ({:.1} MB) \
             to a local directory, whole process timed, {:.2} s CPU (its start-up and one \
             request, `aws s3 ls`: {:.2} s); {} concurrent requests, 8 MiB chunks (its defaults)",
            w.objects,
            w.object_bytes as f64 / MB,
            med(&aws, |r| r.cpu),
            med(&aws_fixed, |r| r.wall),
            ship::AWS_CLI_CONCURRENCY
        ),
    );
    f.add(
        &name(".vs_aws_cli"),
        a / o,
        "x",
        None,
        format!(
            "the AWS CLI's time / ours, interleaved (above 1: ours is faster); no target: a \
             restore does more than a copy (checks, pages applied, integrity check); moto's \
             CPU: {:.0} % of a core during ours, {:.0} % during the AWS CLI's",
            med(&ours, |r| r.server_cpu) / o * 100.0,
            med(&aws, |r| r.server_cpu) / a * 100.0
        ),
    );
    Ok(())
}

/// `/proc/loadavg`'s 1-minute figure, or `?`.
fn load_1min() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// CPU model and logical core count.
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}
