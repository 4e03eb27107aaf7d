//! Shipping to S3-compatible storage: `spool ship --once` against the AWS CLI uploading the very
//! same segment files to the same loopback server, and the CPU each spends per MB shipped.
//!
//! The server is moto's server mode (`moto_server`, Python, in memory) from the venv `./test.sh`
//! makes (`target/s3-venv`, or `$EDGESTORE_S3_VENV`), started with fixed test credentials and
//! nothing read from the machine's AWS configuration, killed at the end. The workload is real
//! spool segments written once, untimed, from [`MetricGenerator`] rows at level 1 and kept in a
//! pristine data directory. Per rep, ours is a measuring child (the current executable, see
//! [`super::memory::CHILD_ENV`]) doing what `spool ship --once` does as the owner, on a fresh
//! copy of that directory; the baseline is `aws s3 cp --recursive` of a directory holding
//! exactly the segment files. Both are timed as whole processes (start-up included on both
//! sides), and their CPU (user + sys, all threads) is read from `/proc/PID/stat` once the
//! process has exited and before it is reaped, so nothing else is counted. Every rep is
//! checked: ours must acknowledge every segment, and a listing by the AWS CLI must show each
//! side's objects, all of them with every byte, before the bucket is emptied for the next rep.
//!
//! The backup figures ([`super::backup`]) use the same server, isolation and measuring.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use edgestore::sample::MetricGenerator;
use edgestore::spool::SegmentName;
use edgestore::{Metric, Spool, SpoolConfig};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

use super::error::{BenchError, Result};
use super::fixture::{tempdir, Host, Side};
use super::memory::CHILD_ENV;
use crate::ship::{RoundReport, ShipConfig, Shipper, ShipperOptions, DEFAULT_PART_SIZE};

/// The child work of the ship figures.
pub const SHIP: &str = "ship";

/// Names a venv with `moto_server` and `aws` (over `target/s3-venv`).
pub const VENV_ENV: &str = "EDGESTORE_S3_VENV";

/// What to do when the venv is missing.
pub const INSTALL: &str = "run ./test.sh --install-only (it creates target/s3-venv with \
                           moto[server] and awscli), or set EDGESTORE_S3_VENV to a venv with both";

/// Brotli quality of the shipped segments: the bytes' content does not matter to an upload,
/// and level 1 writes 64 MB of segments in seconds.
pub const LEVEL: u32 = 1;

/// The bucket both sides upload to.
pub const BUCKET: &str = "edgestore-bench";

/// The test credentials (moto checks no signature) and region.
const ACCESS_KEY_ID: &str = "test";
const SECRET_ACCESS_KEY: &str = "test";
pub(super) const REGION: &str = "us-east-1";

/// The spool's directory in the data directory, and its identifier.
const SPOOL_DIR: &str = "metrics";
const IDENTIFIER: &str = "bench";

/// The AWS CLI's default `max_concurrent_requests` (its `s3` settings are left at defaults).
pub const AWS_CLI_CONCURRENCY: usize = 10;

/// How long one measured process, or one untimed AWS CLI command, may take.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(600);

/// How long moto may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a measured process is looked at for its exit: the wall time's resolution.
const POLL: Duration = Duration::from_millis(1);

/// The unit of `/proc`'s CPU times (`USER_HZ`): 100 per second on every Linux ABI in use.
const TICKS_PER_S: u64 = 100;

/// The venv with `moto_server` and `aws`: `$EDGESTORE_S3_VENV`, else `s3-venv` in a directory
/// above the current executable (`target/release/edgestore` -> `target/s3-venv`; the bench
/// binary sits one level deeper), else `target/s3-venv` in the current directory or above.
/// `None` when none has both.
pub fn venv() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(VENV_ENV) {
        let dir = PathBuf::from(dir);
        return usable(&dir).then_some(dir);
    }
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    let beside_exe = exe
        .iter()
        .flat_map(|e| e.ancestors().skip(1).map(|a| a.join("s3-venv")));
    let under_cwd = cwd
        .iter()
        .flat_map(|c| c.ancestors().map(|a| a.join("target").join("s3-venv")));
    beside_exe.chain(under_cwd).find(|dir| usable(dir))
}

/// Why the ship figures are skipped, and how to install what they need.
pub fn missing_venv_note() -> String {
    match std::env::var_os(VENV_ENV) {
        Some(dir) => format!(
            "no moto_server and aws in {VENV_ENV}={}: {INSTALL}",
            Path::new(&dir).display()
        ),
        None => format!("no target/s3-venv with moto_server and aws: {INSTALL}"),
    }
}

fn usable(venv: &Path) -> bool {
    let bin = venv.join("bin");
    bin.join("moto_server").is_file() && bin.join("aws").is_file()
}

/// Point a process at the test credentials and away from the machine's AWS configuration (no
/// config or credentials file, no profile, no instance metadata service), so both sides run
/// with the tools' defaults.
pub(super) fn isolate_aws_env(cmd: &mut Command) {
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/nonexistent/edgestore-bench/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/edgestore-bench/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// The same isolation for a client in this process ([`crate::ship::Target::open_with_env`]):
/// the test credentials and region, no other variable (no home, so no AWS files either).
pub(super) fn isolated_aws_var(name: &str) -> Option<String> {
    match name {
        "AWS_ACCESS_KEY_ID" => Some(ACCESS_KEY_ID.into()),
        "AWS_SECRET_ACCESS_KEY" => Some(SECRET_ACCESS_KEY.into()),
        "AWS_REGION" | "AWS_DEFAULT_REGION" => Some(REGION.into()),
        _ => None,
    }
}

/// A process's state and CPU time from `/proc/PID/stat`.
struct ProcStat {
    /// Exited, not yet reaped.
    zombie: bool,
    /// User + system time of all its threads, plus that of the children it reaped.
    cpu: Duration,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: fields follow the last `)`.
    let fields: Vec<&str> = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // state is field 3 of the man page; utime, stime, cutime, cstime are 14 to 17.
    let total = ticks(11)? + ticks(12)? + ticks(13)? + ticks(14)?;
    Some(ProcStat {
        zombie: fields.first().is_some_and(|s| *s == "Z"),
        cpu: Duration::from_millis(total * 1000 / TICKS_PER_S),
    })
}

/// What a measured process did.
pub(super) struct Measured {
    pub(super) wall: Duration,
    pub(super) cpu: Duration,
    pub(super) status: ExitStatus,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Run `cmd` with its output in files under `logs` (a pipe could fill and stall it), timing it
/// from start to exit; its CPU is read after it exited and before it is reaped.
pub(super) fn measure(mut cmd: Command, logs: &Path, what: &str) -> Result<Measured> {
    let out_path = logs.join(format!("{what}.out"));
    let err_path = logs.join(format!("{what}.err"));
    let create = |p: &Path| {
        File::create(p).map_err(|e| BenchError::io(format!("create {}", p.display()), e))
    };
    cmd.stdin(Stdio::null())
        .stdout(create(&out_path)?)
        .stderr(create(&err_path)?);
    let t = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| BenchError::io(format!("start {what}"), e))?;
    let exited = loop {
        match proc_stat(child.id()) {
            Some(s) if s.zombie => break Some(s),
            Some(_) => {}
            None => break None,
        }
        if t.elapsed() > PROCESS_TIMEOUT {
            stop(&mut child);
            return Err(BenchError::Check(format!(
                "{what} did not finish within {} s",
                PROCESS_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    };
    let wall = t.elapsed();
    // The group leader shows as a zombie as soon as it exits, while its other threads may
    // still be exiting and adding their time to the group's: read once more a moment later
    // (it stays a zombie until it is reaped below).
    let exited = exited.map(|first| {
        std::thread::sleep(POLL);
        match proc_stat(child.id()) {
            Some(again) if again.cpu > first.cpu => again,
            _ => first,
        }
    });
    let status = child
        .wait()
        .map_err(|e| BenchError::io(format!("wait for {what}"), e))?;
    let Some(exited) = exited else {
        return Err(BenchError::Check(format!(
            "no /proc entry for {what}: its CPU time cannot be read (Linux only)"
        )));
    };
    let read = |p: &Path| std::fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned());
    Ok(Measured {
        wall,
        cpu: exited.cpu,
        status,
        stdout: read(&out_path).unwrap_or_default(),
        stderr: read(&err_path).unwrap_or_default(),
    })
}

/// Kill a child we started and reap it.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A running `moto_server` on a loopback port, killed when dropped.
pub struct S3Server {
    child: Child,
    port: u16,
    bin: PathBuf,
    /// Its log and the measured processes' output.
    logs: TempDir,
}

impl S3Server {
    /// Start `moto_server` from `venv` on a free loopback port and wait until it answers (a
    /// port taken in between is retried on another).
    pub fn start(venv: &Path) -> Result<S3Server> {
        let bin = venv.join("bin");
        let mut logs = tempdir()?;
        let mut last = String::new();
        for attempt in 0..3 {
            let port = free_port()?;
            let log = logs.path().join(format!("moto-{attempt}.log"));
            let log_file =
                File::create(&log).map_err(|e| BenchError::io("create the moto log", e))?;
            let err_file = log_file
                .try_clone()
                .map_err(|e| BenchError::io("share the moto log", e))?;
            let mut cmd = Command::new(bin.join("moto_server"));
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(err_file);
            isolate_aws_env(&mut cmd);
            let child = cmd
                .spawn()
                .map_err(|e| BenchError::io("start moto_server", e))?;
            let mut server = S3Server {
                child,
                port,
                bin: bin.clone(),
                logs,
            };
            let t = Instant::now();
            loop {
                if let Ok(Some(status)) = server.child.try_wait() {
                    last = format!("moto_server exited with {status}: {}", tail(&log));
                    break;
                }
                if answers(port) {
                    return Ok(server);
                }
                if t.elapsed() > START_TIMEOUT {
                    return Err(BenchError::Check(format!(
                        "moto_server did not answer on 127.0.0.1:{port} within {} s: {}",
                        START_TIMEOUT.as_secs(),
                        tail(&log)
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Exited (the port was taken, say): reclaim the log directory and try again.
            logs = std::mem::replace(&mut server.logs, tempdir()?);
        }
        Err(BenchError::Check(format!(
            "moto_server could not start: {last}"
        )))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's CPU time so far (all its threads).
    pub(super) fn cpu(&self) -> Duration {
        proc_stat(self.child.id()).map_or(Duration::ZERO, |s| s.cpu)
    }

    /// Where its log and the measured processes' output go.
    pub(super) fn logs(&self) -> &Path {
        self.logs.path()
    }

    /// The AWS CLI pointed at this server with the test credentials.
    pub(super) fn aws(&self) -> Command {
        let mut cmd = Command::new(self.bin.join("aws"));
        cmd.arg("--endpoint-url").arg(self.endpoint());
        isolate_aws_env(&mut cmd);
        cmd
    }

    /// Run `aws ARGS...` (untimed), which must succeed; its stdout.
    fn aws_ok(&self, args: &[&str]) -> Result<String> {
        let mut cmd = self.aws();
        cmd.args(args);
        let run = measure(cmd, self.logs.path(), "aws")?;
        if !run.status.success() {
            return Err(BenchError::Check(format!(
                "aws {} failed ({}): {}{}",
                args.join(" "),
                run.status,
                run.stdout,
                run.stderr
            )));
        }
        Ok(run.stdout)
    }

    /// `aws --version`'s first word (`aws-cli/1.x.y`).
    pub fn aws_version(&self) -> String {
        let mut cmd = Command::new(self.bin.join("aws"));
        cmd.arg("--version");
        isolate_aws_env(&mut cmd);
        match measure(cmd, self.logs.path(), "aws-version") {
            Ok(run) => format!("{} {}", run.stdout, run.stderr)
                .split_whitespace()
                .next()
                .unwrap_or("aws-cli")
                .to_owned(),
            Err(_) => "aws-cli".into(),
        }
    }

    /// The AWS CLI's fixed cost: start-up and one request (`aws s3 ls` of an empty prefix),
    /// whole process, so its rate can be read without it.
    pub fn aws_fixed_cost(&self) -> Result<Run> {
        let mut cmd = self.aws();
        cmd.args(["s3", "ls", &format!("s3://{BUCKET}/nothing-here/")]);
        let before = self.cpu();
        // `ls` of an empty prefix exits 1: the time is what counts.
        let run = measure(cmd, self.logs.path(), "aws-ls")?;
        Ok(Run {
            wall: run.wall,
            cpu: run.cpu,
            server_cpu: self.cpu().saturating_sub(before),
            round: None,
        })
    }

    /// Create [`BUCKET`].
    pub fn create_bucket(&self) -> Result<()> {
        self.aws_ok(&["s3", "mb", &format!("s3://{BUCKET}")])
            .map(drop)
    }

    /// The bucket's objects as the AWS CLI lists them, by their key's first component: how
    /// many, and their bytes.
    pub fn objects(&self) -> Result<BTreeMap<String, (u64, u64)>> {
        let out = self.aws_ok(&[
            "s3api",
            "list-objects-v2",
            "--bucket",
            BUCKET,
            "--output",
            "json",
        ])?;
        let mut by_prefix: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        if out.trim().is_empty() {
            return Ok(by_prefix);
        }
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
            BenchError::Check(format!("aws s3api list-objects-v2 printed {out:?}: {e}"))
        })?;
        let list = v
            .get("Contents")
            .and_then(|c| c.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for object in list {
            let key = object.get("Key").and_then(|k| k.as_str()).unwrap_or("");
            let size = object.get("Size").and_then(|s| s.as_u64()).unwrap_or(0);
            let prefix = key.split('/').next().unwrap_or("").to_owned();
            let entry = by_prefix.entry(prefix).or_default();
            entry.0 += 1;
            entry.1 += size;
        }
        Ok(by_prefix)
    }

    /// Delete every object of the bucket, so each rep uploads to a server in the same state.
    pub fn empty_bucket(&self) -> Result<()> {
        self.aws_ok(&[
            "s3",
            "rm",
            "--recursive",
            "--only-show-errors",
            &format!("s3://{BUCKET}/"),
        ])
        .map(drop)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A free loopback port (free when asked: moto binds it a moment later).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| BenchError::io("find a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| BenchError::io("find a free port", e))
}

/// Whether an HTTP server answers on 127.0.0.1:`port` (any status).
fn answers(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// The last lines of a log file, on one line.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join(" | ")
}

/// One measured upload of every segment (or download of a backup, [`super::backup`]).
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Start to exit of the uploading process.
    pub wall: Duration,
    /// Its CPU time (user + sys, all threads).
    pub cpu: Duration,
    /// The server's CPU time meanwhile.
    pub server_cpu: Duration,
    /// Ours only: its work alone, without start-up (the shipping round, `ship_once`; the
    /// backup figures' restore call).
    pub round: Option<Duration>,
}

/// The segments to ship: a pristine data directory holding one spool of finished segments,
/// and a directory holding exactly the segment files for the AWS CLI.
pub struct Workload {
    pristine: TempDir,
    files: TempDir,
    /// Each segment's size, oldest first.
    pub sizes: Vec<u64>,
}

/// The spool of the workload and of the child.
fn spool_config() -> SpoolConfig {
    let mut config = SpoolConfig::new(IDENTIFIER);
    config.compression_level = LEVEL;
    // Segments are cut by `flush` alone, at the row counts asked for.
    config.max_records = u64::MAX;
    config.max_interval = Duration::from_secs(24 * 3600);
    config
}

impl Workload {
    /// Write one segment of `rows[i]` rows each (seed 2024, level 1), untimed.
    pub fn new(rows: &[usize]) -> Result<Workload> {
        let pristine = tempdir()?;
        let spool_dir = pristine.path().join(SPOOL_DIR);
        {
            let spool: Spool<Metric> = Spool::open_path(&spool_dir, spool_config())?;
            let mut generator = MetricGenerator::new(2024, 1_700_000_000_000);
            for &n in rows {
                let mut left = n;
                while left > 0 {
                    let batch = left.min(super::spool::BATCH);
                    spool.put(&generator.batch(batch))?;
                    left -= batch;
                }
                spool.flush()?;
            }
        }
        let files = tempdir()?;
        let mut segments: Vec<(SegmentName, String, u64)> = Vec::new();
        let entries = std::fs::read_dir(&spool_dir)
            .map_err(|e| BenchError::io("list the workload's spool", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| BenchError::io("list the workload's spool", e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Some(parsed) = SegmentName::parse(&name) else {
                continue;
            };
            let bytes = entry
                .metadata()
                .map_err(|e| BenchError::io(format!("stat {name}"), e))?
                .len();
            // The pristine files are never written again: a link is the same file.
            let to = files.path().join(&name);
            if std::fs::hard_link(entry.path(), &to).is_err() {
                std::fs::copy(entry.path(), &to)
                    .map_err(|e| BenchError::io(format!("copy {name}"), e))?;
            }
            segments.push((parsed, name, bytes));
        }
        segments.sort();
        if segments.len() != rows.len() {
            return Err(BenchError::Check(format!(
                "{} flushes made {} segments",
                rows.len(),
                segments.len()
            )));
        }
        Ok(Workload {
            pristine,
            files,
            sizes: segments.into_iter().map(|(_, _, b)| b).collect(),
        })
    }

    /// Segments.
    pub fn count(&self) -> u64 {
        self.sizes.len() as u64
    }

    /// Their bytes.
    pub fn bytes(&self) -> u64 {
        self.sizes.iter().sum()
    }

    /// Segments larger than the default part size (uploaded in parts by both sides).
    pub fn multipart(&self) -> usize {
        self.sizes
            .iter()
            .filter(|&&b| b > DEFAULT_PART_SIZE)
            .count()
    }

    /// Ours: a fresh copy of the data directory (untimed), then a child process doing what
    /// `edgestore spool ship --once` does as the owner, to `s3://BUCKET/PREFIX` with
    /// `ship.concurrency` `concurrency` and the other settings at their defaults. Every segment
    /// must be acknowledged.
    pub fn ours(&self, server: &S3Server, prefix: &str, concurrency: usize) -> Result<Run> {
        let copy = tempdir()?;
        copy_dir(self.pristine.path(), copy.path())?;
        let job = Job {
            data_dir: copy.path().to_path_buf(),
            ship: ShipConfig {
                target: Some(format!("s3://{BUCKET}/{prefix}")),
                endpoint: Some(server.endpoint()),
                region: Some(REGION.into()),
                path_style: true,
                allow_http: true,
                concurrency,
                ..ShipConfig::default()
            },
        };
        let json = serde_json::to_string(&job)
            .map_err(|e| BenchError::Check(format!("encode the ship job: {e}")))?;
        let exe = std::env::current_exe().map_err(|e| BenchError::io("find the executable", e))?;
        let mut cmd = Command::new(exe);
        cmd.env(CHILD_ENV, format!("{SHIP}:{}:{json}", self.count()));
        isolate_aws_env(&mut cmd);
        let before = server.cpu();
        let run = measure(cmd, server.logs.path(), "ship")?;
        let server_cpu = server.cpu().saturating_sub(before);
        if !run.status.success() {
            return Err(BenchError::Check(format!(
                "the ship child failed ({}): {}{}",
                run.status, run.stdout, run.stderr
            )));
        }
        let field = |name: &str| -> Option<u64> {
            run.stdout
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.parse().ok())
        };
        match (field("segments="), field("bytes="), field("round_us=")) {
            (Some(segments), Some(bytes), Some(us))
                if segments == self.count() && bytes == self.bytes() =>
            {
                Ok(Run {
                    wall: run.wall,
                    cpu: run.cpu,
                    server_cpu,
                    round: Some(Duration::from_micros(us)),
                })
            }
            _ => Err(BenchError::Check(format!(
                "the ship child did not ship the {} segments ({} bytes): {}",
                self.count(),
                self.bytes(),
                run.stdout
            ))),
        }
    }

    /// The baseline: `aws s3 cp --recursive` of the segment files to `s3://BUCKET/PREFIX/`,
    /// with the AWS CLI's defaults (10 concurrent requests, 8 MiB multipart threshold and
    /// chunks). It must succeed; [`S3Server::objects`] checks what arrived.
    pub fn aws_cli(&self, server: &S3Server, prefix: &str) -> Result<Run> {
        let mut cmd = server.aws();
        cmd.args(["s3", "cp", "--recursive", "--only-show-errors"])
            .arg(self.files.path())
            .arg(format!("s3://{BUCKET}/{prefix}/"));
        let before = server.cpu();
        let run = measure(cmd, server.logs.path(), "aws-cp")?;
        let server_cpu = server.cpu().saturating_sub(before);
        if !run.status.success() {
            return Err(BenchError::Check(format!(
                "aws s3 cp failed ({}): {}{}",
                run.status, run.stdout, run.stderr
            )));
        }
        Ok(Run {
            wall: run.wall,
            cpu: run.cpu,
            server_cpu,
            round: None,
        })
    }

    /// Whether `listing` ([`S3Server::objects`]) has every segment, with every byte, under
    /// `prefix`.
    pub fn check_uploaded(
        &self,
        listing: &BTreeMap<String, (u64, u64)>,
        prefix: &str,
    ) -> Result<()> {
        let (count, bytes) = listing.get(prefix).copied().unwrap_or_default();
        if (count, bytes) != (self.count(), self.bytes()) {
            return Err(BenchError::Check(format!(
                "s3://{BUCKET}/{prefix}/ holds {count} objects ({bytes} bytes), not the {} \
                 segments ({} bytes)",
                self.count(),
                self.bytes()
            )));
        }
        Ok(())
    }
}

/// Copy a directory tree (regular files and directories).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)
        .map_err(|e| BenchError::io(format!("create {}", to.display()), e))?;
    let entries = std::fs::read_dir(from)
        .map_err(|e| BenchError::io(format!("list {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BenchError::io(format!("list {}", from.display()), e))?;
        let kind = entry
            .file_type()
            .map_err(|e| BenchError::io(format!("stat {}", entry.path().display()), e))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| BenchError::io(format!("copy {}", entry.path().display()), e))?;
        }
    }
    Ok(())
}

/// What the ship child does: where the data directory is and the `ship` section.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    data_dir: PathBuf,
    ship: ShipConfig,
}

/// The ship child's work (`spec`: the JSON [`Job`]): own the data directory, open its spool,
/// one round of the shipper, as `edgestore spool ship --once` does; it fails unless all
/// `expected` segments were acknowledged.
pub(super) fn ship_child(expected: u64, spec: &str) -> Result<()> {
    let job: Job = serde_json::from_str(spec)
        .map_err(|e| BenchError::Check(format!("bad ship job {spec}: {e}")))?;
    let host = Host::new()?;
    let store = host.open(Side::Native, &job.data_dir)?;
    let outcome = host.rt.block_on(async {
        let spool = store.spool(SPOOL_DIR, spool_config()).await?;
        let options = ShipperOptions {
            config: job.ship.clone(),
            data_dir: job.data_dir.clone(),
            spool_dir: SPOOL_DIR.to_owned(),
            breaker: store.breaker_config(),
            report: false,
        };
        let shipper = Shipper::open(spool, store.metrics().clone(), options)?;
        let t = Instant::now();
        let report = shipper.ship_once().await?;
        Ok::<(RoundReport, Duration), BenchError>((report, t.elapsed()))
    });
    let closed = host.rt.block_on(store.close());
    let (report, round) = outcome?;
    closed?;
    let left = report.failed + report.skipped + report.quarantined;
    if report.segments != expected || left > 0 || !report.failures.is_empty() {
        return Err(BenchError::Check(format!(
            "{} of {expected} segments shipped: {}; {}",
            report.segments,
            report.summary(),
            report.failures.join("; ")
        )));
    }
    println!(
        "segments={} bytes={} round_us={}",
        report.segments,
        report.bytes,
        round.as_micros()
    );
    Ok(())
}

/// Rows of each segment of the full workload (level 1, ~65 bytes a row): 1.6 MB segments with
/// a 10.4 MB one every fifth, above the 8 MiB part size so both sides upload it in parts; 68 MB
/// in all.
pub const FULL_SEGMENT_ROWS: [usize; 20] = [
    25_000, 25_000, 25_000, 25_000, 160_000, 25_000, 25_000, 25_000, 25_000, 160_000, 25_000,
    25_000, 25_000, 25_000, 160_000, 25_000, 25_000, 25_000, 25_000, 160_000,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_cpu_is_read_after_it_exited_and_before_it_is_reaped() {
        let me = proc_stat(std::process::id()).unwrap();
        assert!(!me.zombie);
        let logs = tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo out; echo err >&2; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
        ]);
        let run = measure(cmd, logs.path(), "sh").unwrap();
        assert!(run.status.success());
        assert_eq!(
            (run.stdout.as_str(), run.stderr.as_str()),
            ("out\n", "err\n")
        );
        assert!(run.wall > Duration::ZERO && run.cpu <= run.wall + Duration::from_millis(20));
    }

    #[test]
    fn the_full_workload_is_what_the_figures_promise() {
        let rows: usize = FULL_SEGMENT_ROWS.iter().sum();
        assert_eq!(FULL_SEGMENT_ROWS.len(), 20);
        // ~65 bytes a row at level 1 (67.3 MB measured): 64 MB and more, a few segments over
        // the part size.
        assert!(rows * 64 >= 64_000_000, "{rows}");
        assert!(
            FULL_SEGMENT_ROWS
                .iter()
                .filter(|&&r| r * 64 > 8 << 20)
                .count()
                >= 2
        );
    }
}
