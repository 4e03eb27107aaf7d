//! The owner's admin endpoint: how another process gets a mutation done while a store owns the
//! data directory. The owner serves HTTP/1.0 with JSON bodies on a Unix socket in the data
//! directory ([`edgestore::owner::ADMIN_SOCKET`], mode 0600: whoever may write the data
//! directory may mutate it, nobody else; nothing listens on the network) and records the
//! socket in its owner record, where [`crate::owner::probe`] finds it.
//!
//! Every route is one store operation, run through the owner's own [`Store`] (so its
//! dispatch, retry, breaker and metrics apply): the CLI parses and validates input on its side
//! exactly as it would locally and sends batches.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/spool/put` | `{"identifier", "rows": [metric]}` | `{}` |
//! | `POST /v1/spool/put-documents` | `{"identifier", "docs": [text]}` | `{}` |
//! | `POST /v1/spool/flush`, `/v1/spool/sync` | `{}` | `{}` |
//! | `POST /v1/spool/erase` | `{"label": l, "value": v}` | the erase report (rows erased, segments rewritten and removed) |
//! | `POST /v1/spool/ack` | `{"names": [segment]}` | `{"moved": n}`; an unknown name is `not-found` and nothing moves |
//! | `POST /v1/spool/purge`, `/v1/spool/verify` | `{"json": bool}` | `{"output": report text, "bad": [segment]}` |
//! | `POST /v1/backup/now` | `{}` | the backup status after one round (`invalid-input` without `backup.targets`) |
//! | `POST /v1/backup/verify` | `{}` | the verification reports |
//! | `POST /v1/spool/ship` | `{}` | the round's [`RoundReport`] (the owner's shipper and `ship` settings; `invalid-input` when it has no `ship.target`) |
//! | `POST /v1/db/upsert` | `{"schema", "rows": [row]}` | `{"rows": n}` (one transaction) |
//! | `POST /v1/db/delete` | `{"schema", "keys": [key]}` | `{"deleted": [bool]}` (stops after the first missing key) |
//!
//! Errors answer 4xx/5xx with `{"code", "message"}`: the core's code survives the hop.
//!
//! The client is a few lines of HTTP/1.0 over `std::os::unix::net::UnixStream` rather than an
//! HTTP client crate: none in our tree speaks over a Unix socket, and HTTP/1.0 with
//! `Content-Length` (no chunking, the server closes) is all this needs.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgestore::model::{Key, Row};
use edgestore::owner::ADMIN_SOCKET;
use edgestore::{present, ErrorCode, Metric, Schema, TimeRange};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::client::{AsyncSpool, Store};
use crate::error::{Error, Result};
use crate::ops::ship::{RoundReport, ShipError, Shipper};

/// Largest request body the endpoint reads (a batch of rows is far smaller).
pub const MAX_BODY_BYTES: u64 = 64 << 20;
/// Longest socket path the platform takes (`sun_path`, less its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// `/v1/spool/put`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PutRequest {
    /// The identifier the caller expects the owner's spool to write.
    pub identifier: String,
    /// The rows.
    pub rows: Vec<Metric>,
}

/// `/v1/spool/put-documents`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PutDocumentsRequest {
    /// As in [`PutRequest`].
    pub identifier: String,
    /// One JSON value per entry.
    pub docs: Vec<String>,
}

/// `/v1/spool/ack`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AckRequest {
    /// Segment file names.
    pub names: Vec<String>,
}

/// `/v1/spool/ack`'s answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct AckReply {
    /// Segments moved to `uploaded/`.
    pub moved: u64,
}

/// `/v1/spool/erase` (answered with the core's `EraseReport`).
#[derive(Debug, Serialize, Deserialize)]
pub struct EraseRequest {
    /// The label (or top-level field).
    pub label: String,
    /// The value of the rows to erase.
    pub value: String,
}

/// `/v1/spool/purge` and `/v1/spool/verify`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReportRequest {
    /// Render the report as JSON.
    pub json: bool,
}

/// A rendered report.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReportReply {
    /// The report as `edgestore::present` renders it.
    pub output: String,
    /// Segments found bad (verify).
    pub bad: Vec<String>,
}

/// `/v1/db/upsert`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UpsertRequest {
    /// The model's schema (registered first; a matching table is left alone).
    pub schema: Schema,
    /// Rows in the schema's column order.
    pub rows: Vec<Row>,
}

/// `/v1/db/upsert`'s answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct UpsertReply {
    /// Rows written.
    pub rows: u64,
}

/// `/v1/db/delete`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeleteRequest {
    /// The model's schema.
    pub schema: Schema,
    /// Keys in the schema's key order.
    pub keys: Vec<Key>,
}

/// `/v1/db/delete`'s answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeleteReply {
    /// One entry per key handled, in order; the last is `false` when a key was missing (the
    /// keys after it are left alone).
    pub deleted: Vec<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ErrorReply {
    code: String,
    message: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Empty {}

/// The socket path for `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ADMIN_SOCKET)
}

/// The endpoint: a `tiny_http` server on the socket, on its own thread; stopped and its socket
/// removed when dropped.
pub struct AdminServer {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AdminServer {
    /// Serve `store` (which must own `data_dir`) and its `spool` on the data directory's
    /// socket, and record the socket in the owner record. Runs inside a tokio runtime.
    pub fn start(data_dir: &Path, store: Store, spool: AsyncSpool) -> Result<AdminServer> {
        AdminServer::start_with_services(data_dir, store, spool, Services::default())
    }

    /// [`AdminServer::start`], with the owner's shipper answering `spool ship --once` and its
    /// backup answering `backup now|verify`.
    pub fn start_with_services(
        data_dir: &Path,
        store: Store,
        spool: AsyncSpool,
        services: Services,
    ) -> Result<AdminServer> {
        if store.is_inspector() {
            return Err(Error::Config(
                "only the store that owns the data directory serves its admin socket".into(),
            ));
        }
        let dir = data_dir.canonicalize().map_err(|e| {
            Error::Config(format!(
                "resolve data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = socket_path(&dir);
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::Config(format!(
                "admin socket path {} is longer than {MAX_SOCKET_PATH} bytes",
                path.display()
            )));
        }
        // This store owns the directory, so a socket file here is a dead owner's.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Config(format!(
                    "remove the stale admin socket {}: {e}",
                    path.display()
                )))
            }
        }
        let server = tiny_http::Server::http_unix(&path)
            .map_err(|e| Error::Config(format!("listen on {}: {e}", path.display())))?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
                |e| Error::Config(format!("restrict the admin socket {}: {e}", path.display())),
            )?;
        }
        let server = Arc::new(server);
        let runtime = tokio::runtime::Handle::current();
        let srv = server.clone();
        let (s, sp) = (store.clone(), spool);
        let thread = std::thread::Builder::new()
            .name("edgestore-admin".into())
            .spawn(move || {
                for mut request in srv.incoming_requests() {
                    let response = runtime.block_on(crate::audit::AUDIT_VIA.scope(
                        "admin-socket".to_owned(),
                        handle(&mut request, &s, &sp, &services),
                    ));
                    let _ = request.respond(response);
                }
            })
            .map_err(|e| Error::runtime(format!("start the admin thread: {e}")))?;
        let admin = AdminServer {
            server,
            thread: Some(thread),
            path: path.clone(),
        };
        store.set_admin_endpoint(Some(path.display().to_string()))?;
        Ok(admin)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

type Response = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn json_response(status: u16, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = tiny_http::Response::from_data(bytes).with_status_code(status);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
        r.add_header(h);
    }
    r
}

fn status_of(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::InvalidInput => 400,
        ErrorCode::PermissionDenied | ErrorCode::AccessDenied => 403,
        ErrorCode::NotFound | ErrorCode::TableMissing | ErrorCode::NoSuchDatabase => 404,
        ErrorCode::DuplicateKey | ErrorCode::ForeignKey | ErrorCode::Constraint => 409,
        ErrorCode::Busy => 503,
        ErrorCode::DiskFull => 507,
        _ => 500,
    }
}

fn error_response(e: &Error) -> Response {
    let code = e.code();
    json_response(
        status_of(code),
        &ErrorReply {
            code: code.as_str().to_owned(),
            message: e.to_string(),
        },
    )
}

fn bad_request(message: String) -> Error {
    Error::Store(edgestore::Error::invalid_input(message))
}

fn read_body<T: DeserializeOwned>(request: &mut tiny_http::Request) -> Result<T> {
    if request
        .body_length()
        .is_some_and(|n| n as u64 > MAX_BODY_BYTES)
    {
        return Err(bad_request(format!(
            "request body larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    let mut bytes = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad_request(format!("read the request body: {e}")))?;
    if bytes.len() as u64 > MAX_BODY_BYTES {
        return Err(bad_request(format!(
            "request body larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| bad_request(format!("bad request body: {e}")))
}

fn check_identifier(spool: &AsyncSpool, wanted: &str) -> Result<()> {
    let own = spool.identifier();
    if own == wanted {
        Ok(())
    } else {
        Err(bad_request(format!(
            "the owner's spool writes identifier {own:?}, not {wanted:?}"
        )))
    }
}

async fn handle(
    request: &mut tiny_http::Request,
    store: &Store,
    spool: &AsyncSpool,
    services: &Services,
) -> Response {
    if *request.method() != tiny_http::Method::Post {
        return error_response(&bad_request("only POST".into()));
    }
    let route = request.url().split('?').next().unwrap_or("").to_owned();
    let out = route_request(&route, request, store, spool, services).await;
    match out {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn route_request(
    route: &str,
    request: &mut tiny_http::Request,
    store: &Store,
    spool: &AsyncSpool,
    services: &Services,
) -> Result<Response> {
    Ok(match route {
        "/v1/spool/put" => {
            let req: PutRequest = read_body(request)?;
            check_identifier(spool, &req.identifier)?;
            spool.put(req.rows).await?;
            json_response(200, &Empty {})
        }
        "/v1/spool/put-documents" => {
            let req: PutDocumentsRequest = read_body(request)?;
            check_identifier(spool, &req.identifier)?;
            spool.put_documents(req.docs).await?;
            json_response(200, &Empty {})
        }
        "/v1/spool/flush" => {
            read_body::<Empty>(request)?;
            spool.flush().await?;
            json_response(200, &Empty {})
        }
        "/v1/spool/sync" => {
            read_body::<Empty>(request)?;
            spool.sync().await?;
            json_response(200, &Empty {})
        }
        "/v1/spool/ack" => {
            let req: AckRequest = read_body(request)?;
            let known: Vec<String> = spool
                .segments(TimeRange::all())
                .await?
                .into_iter()
                .map(|s| s.name)
                .collect();
            if let Some(missing) = req.names.iter().find(|n| !known.contains(n)) {
                return Err(Error::Store(edgestore::Error::not_found(format!(
                    "no such segment: {missing}"
                ))));
            }
            let moved = spool.mark_uploaded(req.names).await?;
            json_response(200, &AckReply { moved })
        }
        "/v1/spool/erase" => {
            let req: EraseRequest = read_body(request)?;
            let filter = edgestore::spool::EraseFilter {
                label: req.label,
                value: req.value,
            };
            json_response(200, &spool.erase(filter).await?)
        }
        "/v1/spool/purge" => {
            let req: ReportRequest = read_body(request)?;
            let report = spool.purge().await?;
            json_response(
                200,
                &ReportReply {
                    output: present::purge(&report, req.json),
                    bad: Vec::new(),
                },
            )
        }
        "/v1/spool/verify" => {
            let req: ReportRequest = read_body(request)?;
            let report = spool.verify().await?;
            json_response(
                200,
                &ReportReply {
                    output: present::verify(&report, req.json),
                    bad: report.quarantined.clone(),
                },
            )
        }
        "/v1/spool/ship" => {
            read_body::<Empty>(request)?;
            let shipper = services.shipper.as_ref().ok_or_else(|| {
                bad_request(
                    "the owner ships nothing: its configuration has no ship.target (set it \
                     there; serve then ships on its own)"
                        .into(),
                )
            })?;
            let report: RoundReport = shipper.ship_once().await.map_err(ship_error)?;
            json_response(200, &report)
        }
        "/v1/backup/now" | "/v1/backup/verify" => {
            read_body::<Empty>(request)?;
            let backup = services.backup.as_ref().ok_or_else(|| {
                bad_request(
                    "the owner backs up nothing: its configuration has no backup.targets (set \
                     them there; serve then backs up on its own)"
                        .into(),
                )
            })?;
            let failed = |e: crate::ops::backup::BackupError| {
                Error::Store(edgestore::Error::new(ErrorCode::Io, e.to_string()))
            };
            if route == "/v1/backup/now" {
                json_response(200, &backup.backup_now().await.map_err(failed)?)
            } else {
                json_response(200, &backup.verify().await.map_err(failed)?)
            }
        }
        "/v1/db/upsert" => {
            let req: UpsertRequest = read_body(request)?;
            let rows = store.upsert_rows(req.schema, req.rows).await?;
            json_response(200, &UpsertReply { rows })
        }
        "/v1/db/delete" => {
            let req: DeleteRequest = read_body(request)?;
            let deleted = store.delete_keys(req.schema, req.keys).await?;
            json_response(200, &DeleteReply { deleted })
        }
        other => {
            return Err(Error::Store(edgestore::Error::not_found(format!(
                "no admin route {other}"
            ))))
        }
    })
}

/// The owner's services beside its store that forwarded commands reach.
#[derive(Debug, Clone, Default)]
pub struct Services {
    /// Answers `spool ship --once`.
    pub shipper: Option<Shipper>,
    /// Answers `backup now` and `backup verify`.
    pub backup: Option<crate::ops::backup::BackupRunner>,
}

/// A shipping round that could not run, as the store error the socket answers with.
fn ship_error(e: ShipError) -> Error {
    match e {
        ShipError::Store(e) => e,
        other => Error::Store(edgestore::Error::new(ErrorCode::Io, other.to_string())),
    }
}

/// A client of an owner's admin socket.
#[derive(Debug, Clone)]
pub struct AdminClient {
    path: PathBuf,
}

impl AdminClient {
    /// A client of the socket at `path` (from the owner record).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AdminClient { path: path.into() }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One request: `route` with `body` as JSON, the answer parsed as `T`; an error answer
    /// comes back as the owner's error (code kept).
    pub async fn call<B: Serialize, T: DeserializeOwned + Send + 'static>(
        &self,
        route: &str,
        body: &B,
    ) -> Result<T> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::runtime(format!("encode the request: {e}")))?;
        let path = self.path.clone();
        let route = route.to_owned();
        let (status, body) = tokio::task::spawn_blocking(move || exchange(&path, &route, &bytes))
            .await
            .map_err(|e| Error::runtime(format!("the admin request failed: {e}")))??;
        if status == 200 {
            return serde_json::from_slice(&body)
                .map_err(|e| Error::runtime(format!("bad answer from the owner: {e}")));
        }
        let reply: ErrorReply = serde_json::from_slice(&body).map_err(|_| {
            Error::runtime(format!(
                "the owner answered {status}: {}",
                String::from_utf8_lossy(&body)
            ))
        })?;
        let code = ErrorCode::parse(&reply.code).unwrap_or(ErrorCode::Internal);
        Err(Error::Store(edgestore::Error::new(
            code,
            format!("the owner refused: {}", reply.message),
        )))
    }
}

/// Send one HTTP/1.0 request and read the whole answer (the server closes after it).
fn exchange(path: &Path, route: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let fail = |what: &str, e: std::io::Error| {
        Error::Store(edgestore::Error::io(
            format!("{what} the owner's admin socket {}", path.display()),
            e,
        ))
    };
    let mut stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|e| fail("connect to", e))?;
    let head = format!(
        "POST {route} HTTP/1.0\r\nHost: edgestore\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush())
        .map_err(|e| fail("write to", e))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| fail("read from", e))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::runtime("the owner's answer has no header end"))?;
    let status = std::str::from_utf8(&answer[..split])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| Error::runtime("the owner's answer has no status"))?;
    Ok((status, answer[split + 4..].to_vec()))
}
