//! A real S3-protocol server on loopback and an independent S3 client, for the shipping tests.
//!
//! The server is moto's server mode (`moto_server`, Python, in-memory), the client the AWS CLI
//! (v1); both are pinned by `./test.sh` in the venv `target/s3-venv` (or the venv at
//! `$EDGESTORE_S3_VENV`). Without them a test is skipped with a note, except under CI (`CI` set),
//! where their absence fails it (see [`super::tool_available`]).
//!
//! * [`S3Server`]: `moto_server -H 127.0.0.1 -p PORT` on a free port, answered before it is
//!   handed out, its request log kept (printed when a test fails), killed when dropped; the AWS
//!   CLI pointed at it ([`S3Server::aws`]) with fixed test credentials and nothing read from the
//!   machine's own AWS configuration.
//! * [`Proxy`]: a TCP proxy in front of it that counts connections and can play a server that is
//!   down (every connection closed at once, live ones cut), to count what a client sends to a
//!   server that does not answer.
//!
//! Moto checks no signature unless told to: [`S3Server::require_auth`] turns its IAM checks on
//! (its `/moto-api/reset-auth`), so unknown or wrong keys are refused with 403.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::{free_port, output_within, text, tool_available, Daemon};

/// The access key every test client uses (moto accepts any until [`S3Server::require_auth`]).
pub const ACCESS_KEY_ID: &str = "test";
/// Its secret.
pub const SECRET_ACCESS_KEY: &str = "test";
/// The region of the server's buckets.
pub const REGION: &str = "us-east-1";

/// How long one AWS CLI command may take.
const AWS_TIMEOUT: Duration = Duration::from_secs(120);

/// What to do when the venv is missing.
pub const INSTALL: &str = "run ./test.sh --install-only (it creates the venv target/s3-venv with \
                           moto[server] and awscli), or set EDGESTORE_S3_VENV to a venv with both";

/// The venv with `moto_server` and `aws`: `$EDGESTORE_S3_VENV`, or the one `./test.sh` makes at
/// `target/s3-venv` in the workspace.
pub fn venv() -> PathBuf {
    match std::env::var_os("EDGESTORE_S3_VENV") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/s3-venv"),
    }
}

/// Whether the venv's server and client run (skip note, or failure under CI, otherwise).
pub fn available() -> bool {
    let bin = venv().join("bin");
    tool_available(bin.join("aws").to_str().expect("utf-8 path"), INSTALL)
        && tool_available(
            bin.join("moto_server").to_str().expect("utf-8 path"),
            INSTALL,
        )
}

/// Point a process at the test credentials and away from the machine's AWS configuration:
/// no shared config or credentials file, no profile, no instance metadata service (a client
/// that found no credentials would otherwise ask a link-local address, which is not ours).
pub fn isolate_aws_env(cmd: &mut Command, access_key_id: &str, secret_access_key: &str) {
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
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret_access_key)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/nonexistent/edgestore-test/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/edgestore-test/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// An object as `list-objects-v2` or `list-object-versions` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag, quotes removed (the MD5 of the bytes for a single-part upload).
    pub etag: String,
    /// Its version (`list-object-versions` only).
    pub version_id: Option<String>,
}

/// A running `moto_server` on loopback, killed when dropped (its log printed if the test fails).
pub struct S3Server {
    daemon: Daemon,
    /// Its port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
}

impl S3Server {
    /// Start the server on a free loopback port and wait until it answers (60 s at most; a
    /// port taken in between is retried on another). `None`: the venv is missing and the test
    /// is skipped (see [`available`]).
    pub fn start() -> Option<S3Server> {
        if !available() {
            return None;
        }
        let bin = venv().join("bin");
        let mut last = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(bin.join("moto_server"));
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("PYTHONUNBUFFERED", "1");
            isolate_aws_env(&mut cmd, ACCESS_KEY_ID, SECRET_ACCESS_KEY);
            let mut daemon = Daemon::spawn("moto_server", cmd);
            let deadline = Instant::now() + Duration::from_secs(60);
            let up = loop {
                if let Some(status) = daemon.child.try_wait().expect("try_wait") {
                    last = format!("moto_server exited with {status}:\n{}", daemon.log());
                    break false;
                }
                if answers(port) {
                    break true;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "moto_server did not answer on 127.0.0.1:{port} within 60 s:\n{}",
                        daemon.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            if up {
                return Some(S3Server { daemon, port, bin });
            }
        }
        panic!("moto_server could not start: {last}");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The AWS CLI pointed at this server, with the test credentials.
    pub fn aws(&self) -> Command {
        self.aws_as(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    }

    /// The AWS CLI pointed at this server with the given credentials.
    pub fn aws_as(&self, access_key_id: &str, secret_access_key: &str) -> Command {
        let mut cmd = Command::new(self.bin.join("aws"));
        cmd.arg("--endpoint-url").arg(self.endpoint());
        isolate_aws_env(&mut cmd, access_key_id, secret_access_key);
        cmd
    }

    /// Run `aws ARGS...` (2 minutes at most); its output, whatever the exit status.
    pub fn aws_output(&self, args: &[&str]) -> Output {
        output_within(self.aws().args(args), AWS_TIMEOUT)
    }

    /// Run `aws ARGS...`, which must succeed; its stdout.
    pub fn aws_ok(&self, args: &[&str]) -> String {
        let out = self.aws_output(args);
        assert!(
            out.status.success(),
            "aws {} failed ({}):\n{}{}\n--- moto_server log ---\n{}",
            args.join(" "),
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            self.log_tail(30)
        );
        text(&out.stdout)
    }

    /// Create `bucket` (`aws s3 mb`).
    pub fn create_bucket(&self, bucket: &str) {
        self.aws_ok(&["s3", "mb", &format!("s3://{bucket}")]);
    }

    /// Turn versioning on for `bucket`: every write is kept, so a test can see whether a key
    /// was ever written twice.
    pub fn enable_versioning(&self, bucket: &str) {
        self.aws_ok(&[
            "s3api",
            "put-bucket-versioning",
            "--bucket",
            bucket,
            "--versioning-configuration",
            "Status=Enabled",
        ]);
    }

    /// The objects of `bucket` under `prefix` (`aws s3api list-objects-v2`), by key.
    pub fn list_objects(&self, bucket: &str, prefix: &str) -> BTreeMap<String, ObjectInfo> {
        let out = self.aws_ok(&[
            "s3api",
            "list-objects-v2",
            "--bucket",
            bucket,
            "--prefix",
            prefix,
            "--output",
            "json",
        ]);
        objects(&out, "Contents")
            .into_iter()
            .map(|o| (o.key.clone(), o))
            .collect()
    }

    /// Every version of every object of `bucket` under `prefix` (`aws s3api
    /// list-object-versions`; delete markers left out).
    pub fn list_versions(&self, bucket: &str, prefix: &str) -> Vec<ObjectInfo> {
        let out = self.aws_ok(&[
            "s3api",
            "list-object-versions",
            "--bucket",
            bucket,
            "--prefix",
            prefix,
            "--output",
            "json",
        ]);
        objects(&out, "Versions")
    }

    /// Download one object (`aws s3api get-object`) into `to`; its bytes.
    pub fn get_object(&self, bucket: &str, key: &str, to: &Path) -> Vec<u8> {
        self.aws_ok(&[
            "s3api",
            "get-object",
            "--bucket",
            bucket,
            "--key",
            key,
            to.to_str().expect("utf-8 path"),
        ]);
        std::fs::read(to).unwrap_or_else(|e| panic!("read the download {}: {e}", to.display()))
    }

    /// Download every object of `bucket` under `prefix` into `dir` (`aws s3 cp --recursive`,
    /// one command for all); the SHA-256 (hex) of each, by key.
    pub fn download_all(&self, bucket: &str, prefix: &str, dir: &Path) -> BTreeMap<String, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("create the download directory");
        let prefix = prefix.trim_end_matches('/');
        self.aws_ok(&[
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
            &format!("s3://{bucket}/{prefix}"),
            dir.to_str().expect("utf-8 path"),
        ]);
        let mut out = BTreeMap::new();
        walk(dir, &mut |path| {
            let rel = path.strip_prefix(dir).expect("under the directory");
            let rel = rel.to_str().expect("utf-8 key");
            let key = if prefix.is_empty() {
                rel.to_owned()
            } else {
                format!("{prefix}/{rel}")
            };
            out.insert(key, sha256_file(path));
        });
        out
    }

    /// The HTTP requests the server answered so far, as its log shows them (`METHOD PATH ...
    /// STATUS`), oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.daemon
            .log()
            .lines()
            .filter_map(|l| {
                let start = l.find("] \"")? + 3;
                Some(l[start..].to_owned())
            })
            .collect()
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.daemon.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Turn moto's IAM checks on (`true`: from the next request on, only keys created in its
    /// IAM are accepted, with a valid signature) or off.
    pub fn require_auth(&self, on: bool) {
        let body = if on { "0" } else { "inf" };
        let url = format!("{}/moto-api/reset-auth", self.endpoint());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        agent
            .post(&url)
            .send(body.as_bytes())
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    }

    /// Panic (with the log) if the server has exited.
    pub fn assert_running(&mut self) {
        self.daemon.assert_running();
    }
}

/// Whether an HTTP server answers on 127.0.0.1:`port` (any status).
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    use std::io::Write as _;
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// The objects listed under `field` of an `s3api` JSON answer (empty when it is absent).
fn objects(json: &str, field: &str) -> Vec<ObjectInfo> {
    if json.trim().is_empty() {
        return Vec::new();
    }
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("aws printed {json:?}: {e}"));
    let Some(list) = v.get(field).and_then(|l| l.as_array()) else {
        return Vec::new();
    };
    list.iter()
        .map(|o| ObjectInfo {
            key: o["Key"].as_str().expect("Key").to_owned(),
            size: o["Size"].as_u64().expect("Size"),
            etag: o["ETag"]
                .as_str()
                .unwrap_or_default()
                .trim_matches('"')
                .to_owned(),
            version_id: o
                .get("VersionId")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        })
        .collect()
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    for entry in std::fs::read_dir(dir).expect("read the download directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            walk(&path, f);
        } else {
            f(&path);
        }
    }
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of the file at `path`, hex.
pub fn sha256_file(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

// ---------------------------------------------------------------------------------------------
// A counting TCP proxy

/// A TCP proxy on a free loopback port in front of `upstream`: counts the connections it
/// accepts; while "down" it closes each at once (a client sees its connection reset or closed
/// before an answer) and cuts the live ones. Stopped when dropped.
pub struct Proxy {
    /// Its address.
    pub addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: Option<JoinHandle<()>>,
}

struct ProxyShared {
    up: AtomicBool,
    stop: AtomicBool,
    accepted: AtomicUsize,
    refused: AtomicUsize,
    live: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// Start forwarding to `upstream` (up).
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(ProxyShared {
            up: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            live: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    Err(_) => continue,
                };
                s.accepted.fetch_add(1, Ordering::SeqCst);
                if !s.up.load(Ordering::SeqCst) {
                    s.refused.fetch_add(1, Ordering::SeqCst);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                {
                    let mut live = s.live.lock().unwrap();
                    live.retain(|c| c.peer_addr().is_ok());
                    for c in [&client, &server] {
                        if let Ok(c) = c.try_clone() {
                            live.push(c);
                        }
                    }
                }
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Proxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Play a server that is down (`false`: every connection, live or new, closed) or up.
    pub fn set_up(&self, up: bool) {
        self.shared.up.store(up, Ordering::SeqCst);
        if !up {
            for c in self.shared.live.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections closed at once because the proxy was down.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

/// Copy `from` to `to` on a thread until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
        let _ = from.shutdown(Shutdown::Read);
    });
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.set_up(false);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}
