//! Helpers shared by the tests that run the built `edgestore` binary.

#![allow(dead_code)]

/// An S3-protocol server (moto) and the AWS CLI, for the shipping tests.
pub mod keyed;
pub mod s3;
pub mod tmpfs;

use std::io::BufRead as _;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Both engines, by their `--engine` names.
pub const ENGINES: [&str; 2] = ["native", "component"];

/// The binary with a private data directory and compiled-component cache.
pub fn edgestore(data: &Path, engine: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgestore"));
    cmd.arg("--data").arg(data).arg("--engine").arg(engine);
    // The tests' own knobs (`EDGESTORE_LOAD_OPS`, `EDGESTORE_SOAK_*`) are not configuration:
    // the binary refuses an `EDGESTORE_*` variable it does not know.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key == "EDGESTORE_LOAD_OPS" || key.starts_with("EDGESTORE_SOAK_") {
            cmd.env_remove(&*key);
        }
    }
    // These tests are about the store, not the build machine's disk, which may be nearly full.
    cmd.env("EDGESTORE_HEALTH_MAX_DISK_USED_PERCENT", "100");
    // Share one compiled-component cache between the tests of this build.
    cmd.env(
        "EDGESTORE_HOST_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("edgestore-cli-cache"),
    );
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run edgestore")
}

/// Run `cmd`, which must succeed: its stdout (a failure shows the command and its output).
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Run `cmd` with `input` on its stdin, output captured.
pub fn run_with_input(cmd: &mut Command, input: &str) -> Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run edgestore");
    if let Some(mut stdin) = child.stdin.take() {
        // A command may stop reading early (a bad line, a refused batch): a broken pipe is
        // its answer, not the test's failure.
        if let Err(e) = stdin.write_all(input.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    }
    child.wait_with_output().expect("wait for edgestore")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A running `edgestore serve`, killed when dropped. Its stderr goes to a file, printed when
/// the test fails (a panic while it is held) or on demand ([`Serving::stderr`]).
pub struct Serving {
    /// The process.
    pub child: Child,
    /// Its HTTP address.
    pub addr: SocketAddr,
    stderr: tempfile::NamedTempFile,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- edgestore serve ({}) stderr ---\n{}--- end of serve stderr ---",
                self.addr,
                self.stderr()
            );
        }
    }
}

impl Serving {
    /// Start `cmd serve --listen 127.0.0.1:0 extra...` with stdin piped; returns once it
    /// listens.
    pub fn start(cmd: Command, extra: &[&str]) -> Serving {
        Serving::start_at(cmd, "127.0.0.1:0", extra)
    }

    /// Start `cmd serve --listen LISTEN extra...` with stdin piped; returns once it listens
    /// (fails with its stderr if it exits first, or says nothing for 120 s).
    pub fn start_at(mut cmd: Command, listen: &str, extra: &[&str]) -> Serving {
        let stderr = tempfile::NamedTempFile::new().expect("a file for serve's stderr");
        let mut child = cmd
            .args(["serve", "--listen", listen])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("reopen the stderr file"))
            .spawn()
            .expect("start serve");
        // The first line, read on a thread so a server that hangs before announcing itself
        // fails the test (after 120 s) instead of blocking it.
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            let _ = tx.send(first);
        });
        let first = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_default();
        let Some(addr) = first
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
        else {
            let _ = child.kill();
            let status = child.wait();
            let err = std::fs::read_to_string(stderr.path()).unwrap_or_default();
            panic!("serve did not announce its address (first line {first:?}, {status:?}):\n{err}");
        };
        Serving {
            child,
            addr,
            stderr,
        }
    }

    /// What the process wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Start `serve` on `data` with `engine` (see [`Serving::start`]).
pub fn start_serve(data: &Path, engine: &str, extra: &[&str]) -> Serving {
    Serving::start(edgestore(data, engine), extra)
}

/// SIGTERM and wait (60 s at most).
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    signal(child, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `signal` to a child that has not been waited for.
pub fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) only sends a signal; `pid` is our own live child (not yet waited for).
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
}

/// A loopback port that was free a moment ago (bound to port 0, then released), for processes
/// that are told their port (a restarted server that must keep its address, Prometheus).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

/// Whether `program` runs (`program --version`). When it does not, a test that needs it is
/// skipped with a note, except under CI (the variable `CI` set, as `.ci/run` runs), where
/// `./test.sh` installs it and its absence fails the test, naming what installs it.
pub fn tool_available(program: &str, install: &str) -> bool {
    match Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("`{program}` cannot run ({e}): under CI it is required; {install}")
        }
        Err(e) => {
            eprintln!("SKIPPED: `{program}` cannot run ({e}); {install}");
            false
        }
    }
}

/// A helper process (Prometheus, an exporter) with its output in a log file: killed and
/// reaped when dropped, the log's tail printed when the test fails.
pub struct Daemon {
    /// Its name in messages.
    pub name: String,
    /// The process.
    pub child: Child,
    log: tempfile::NamedTempFile,
}

impl Daemon {
    /// Spawn `cmd` with stdin closed and stdout and stderr into the log.
    pub fn spawn(name: &str, mut cmd: Command) -> Daemon {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("reopen the log"))
            .stderr(log.reopen().expect("reopen the log"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Daemon {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Panic (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("{} exited with {status}:\n{}", self.name, self.log());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!(
                "--- {} log (last 40 lines) ---\n{tail}\n--- end of {} log ---",
                self.name, self.name
            );
        }
    }
}

/// Run `cmd` to its end with stdin closed, killing it (and failing the test, with what it wrote)
/// if it has not finished within `timeout`.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    let out = tempfile::NamedTempFile::new().expect("a file for stdout");
    let err = tempfile::NamedTempFile::new().expect("a file for stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen stdout"))
        .stderr(err.reopen().expect("reopen stderr"))
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                std::fs::read_to_string(out.path()).unwrap_or_default(),
                std::fs::read_to_string(err.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: std::fs::read(out.path()).unwrap_or_default(),
        stderr: std::fs::read(err.path()).unwrap_or_default(),
    }
}

/// Poll `check` every `every` until it gives a value; fail after `timeout`, naming `what`.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// Every row of the finished segments of the spool in `data`, read by `edgestore spool cat`
/// (an inspection: it runs beside a running owner too).
pub fn spool_rows(data: &Path) -> Vec<edgestore::Metric> {
    let out = run(edgestore(data, "native").args(["spool", "cat"]));
    assert!(
        out.status.success(),
        "spool cat failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("spool cat printed {l:?}: {e}")))
        .collect()
}

/// A remote write 1.0 body as Prometheus sends it: the message, snappy block-compressed.
pub fn remote_write_v1(
    timeseries: Vec<edgestore_host::ingest::remote_write::proto::v1::TimeSeries>,
) -> Vec<u8> {
    use prost::Message as _;
    let raw = edgestore_host::ingest::remote_write::proto::v1::WriteRequest {
        timeseries,
        ..Default::default()
    }
    .encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compress")
}
