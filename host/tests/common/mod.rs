//! Helpers shared by the tests that run the built `edgestore` binary.

#![allow(dead_code)]

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

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A running `edgestore serve`, killed when dropped.
pub struct Serving {
    /// The process.
    pub child: Child,
    /// Its HTTP address.
    pub addr: SocketAddr,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serving {
    /// Start `cmd serve --listen 127.0.0.1:0 extra...` with stdin piped; returns once it
    /// listens.
    pub fn start(mut cmd: Command, extra: &[&str]) -> Serving {
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start serve");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("first line names the address: {first:?}"));
        Serving { child, addr }
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
