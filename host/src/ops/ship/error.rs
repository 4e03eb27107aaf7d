//! What shipping fails with, and the one classification every caller uses: which failures are
//! worth retrying soon (the target is slow or briefly down), which are permanent until someone
//! changes something (credentials, the bucket, a conflicting object), and which are local.

use std::time::Duration;

/// The kind of a failure: the `kind` label of `edgestore_ship_failures_total`, and whether the
/// shipper retries soon or reports and waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// Network error, timeout, 5xx: retried with backoff.
    Transient,
    /// 429 or 503 SlowDown after the client's own retries: retried with a longer backoff.
    Throttled,
    /// 401/403: wrong or missing credentials, or no permission on the bucket. Permanent.
    Denied,
    /// 404 on a write: the bucket (or the target directory) does not exist. Permanent.
    NoBucket,
    /// Any other 4xx (a bad bucket name, a wrong region's redirect, ...). Permanent.
    Rejected,
    /// An object exists under the segment's key with other bytes. Permanent for that segment.
    Conflict,
    /// The local segment does not match its checksum sidecar: it is quarantined, not shipped.
    Corrupt,
    /// Reading the segment from the data directory failed.
    Local,
    /// The spool (listing, acknowledging) failed.
    Store,
    /// The `ship` configuration cannot work (no credentials, a missing target directory, an
    /// operation the target does not support).
    Config,
}

impl FailureKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Throttled => "throttled",
            FailureKind::Denied => "denied",
            FailureKind::NoBucket => "no-bucket",
            FailureKind::Rejected => "rejected",
            FailureKind::Conflict => "conflict",
            FailureKind::Corrupt => "corrupt",
            FailureKind::Local => "local",
            FailureKind::Store => "store",
            FailureKind::Config => "config",
        }
    }

    /// Failures that retrying will not fix: reported (once per change) and surfaced in health.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            FailureKind::Denied
                | FailureKind::NoBucket
                | FailureKind::Rejected
                | FailureKind::Conflict
                | FailureKind::Config
        )
    }

    /// Failures that say the target itself is failing: they count towards its circuit breaker
    /// (a refusal means it answered, a local failure says nothing about it).
    pub fn counts_against_target(self) -> bool {
        matches!(self, FailureKind::Transient | FailureKind::Throttled)
    }
}

/// A shipping failure. Every message names the target (its URL) and, where there is one, the
/// object key.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The target cannot be set up: bad URL, no credentials, a directory that does not exist.
    #[error("ship target {target}: {message}")]
    Setup {
        /// The target URL.
        target: String,
        /// What is wrong.
        message: String,
    },
    /// A request to the target failed.
    #[error("ship target {target}: {op} {key}: {message}")]
    Target {
        /// How it failed.
        kind: FailureKind,
        /// The target URL.
        target: String,
        /// `HEAD`, `GET`, `PUT`, `multipart upload`, `sync`.
        op: &'static str,
        /// The object key.
        key: String,
        /// The client's message.
        message: String,
    },
    /// Another object already holds the segment's key: never overwritten.
    #[error(
        "ship target {target}: object {key} already exists with different content ({detail}); \
         it is left as it is and segment {segment} stays pending"
    )]
    Conflict {
        /// The target URL.
        target: String,
        /// The object key.
        key: String,
        /// The segment.
        segment: String,
        /// How they differ.
        detail: String,
    },
    /// The segment's bytes do not match its sidecar.
    #[error(
        "segment {name} does not match its checksum sidecar ({detail}); quarantined, not shipped"
    )]
    Corrupt {
        /// The segment.
        name: String,
        /// How it differs.
        detail: String,
    },
    /// Reading the segment failed.
    #[error("read segment {name}: {source}")]
    Local {
        /// The segment.
        name: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A spool operation failed.
    #[error("spool: {0}")]
    Store(#[from] crate::Error),
    /// The target's circuit breaker is open: nothing is sent until its cool-down passes.
    #[error("ship target {target}: circuit open for {retry_in:?} more; last failure: {last}")]
    CircuitOpen {
        /// The target URL.
        target: String,
        /// Until the next probe.
        retry_in: Duration,
        /// The failure that opened it.
        last: String,
    },
}

impl ShipError {
    /// The failure's kind (a breaker refusal reads as the transient failure behind it).
    pub fn kind(&self) -> FailureKind {
        match self {
            ShipError::Setup { .. } => FailureKind::Config,
            ShipError::Target { kind, .. } => *kind,
            ShipError::Conflict { .. } => FailureKind::Conflict,
            ShipError::Corrupt { .. } => FailureKind::Corrupt,
            ShipError::Local { .. } => FailureKind::Local,
            ShipError::Store(_) => FailureKind::Store,
            ShipError::CircuitOpen { .. } => FailureKind::Transient,
        }
    }

    /// See [`FailureKind::is_permanent`].
    pub fn is_permanent(&self) -> bool {
        self.kind().is_permanent()
    }
}

/// The HTTP status in an object-store error's message chain (`... status code: 503 ...`): the
/// crate keeps its retry error type private, but prints the status.
fn status_in(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

/// Every message of an error's source chain, joined on one line, an S3 XML error body cut
/// down to its code and message.
pub(crate) fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    tidy(&out)
}

/// One line (health prints one reason per line); `<?xml ...><Error><Code>C</Code>
/// <Message>M</Message>...` becomes `C: M`.
pub(crate) fn tidy(text: &str) -> String {
    fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
        let start = text.find(open)? + open.len();
        let end = text[start..].find(close)? + start;
        Some(&text[start..end])
    }
    let mut out = text.to_owned();
    if let Some(start) = out.find("<?xml").or_else(|| out.find("<Error>")) {
        let body = out[start..].to_owned();
        let short = match (
            between(&body, "<Code>", "</Code>"),
            between(&body, "<Message>", "</Message>"),
        ) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => body,
        };
        out.truncate(start);
        out.push_str(&short);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What went wrong, shortest first: an S3 error body's `Code: Message (HTTP status)`, or a
/// status alone, or the innermost cause of the chain (`tcp connect error: Connection refused
/// (os error 111)`), with the client's retry count when it retried. The whole chain of
/// `object_store` messages (URL, retry settings, every layer) repeats the key and hides the
/// cause at the end of a long line.
pub(crate) fn cause_text(e: &(dyn std::error::Error + 'static)) -> String {
    let full = chain_text(e);
    let retries = retries_in(&full)
        .filter(|n| *n > 0)
        .map(|n| format!(" (after {n} retries)"))
        .unwrap_or_default();
    if let Some(at) = full.find("status code: ") {
        // `status code: 404 Not Found: NoSuchBucket: The specified bucket does not exist`
        let rest = &full[at + "status code: ".len()..];
        let (status, body) = rest.split_once(':').unwrap_or((rest, ""));
        let (status, body) = (status.trim(), body.trim());
        return if body.is_empty() {
            format!("HTTP {status}{retries}")
        } else {
            let code = status.split(' ').next().unwrap_or(status);
            format!("{body} (HTTP {code}){retries}")
        };
    }
    let mut innermost = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        innermost = s.to_string();
        next = s.source();
    }
    let innermost = tidy(&innermost);
    if innermost.is_empty() {
        full
    } else {
        format!("{innermost}{retries}")
    }
}

/// `Error after N retries` in `object_store`'s retry message.
fn retries_in(text: &str) -> Option<u32> {
    let at = text.find("after ")? + "after ".len();
    let rest = &text[at..];
    let end = rest.find(" retries")?;
    rest[..end].trim().parse().ok()
}

fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = next {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        next = s.source();
    }
    None
}

/// The kind of an object-store error on a write (a 404 then means no bucket; on a read the
/// caller handles `NotFound` as "no object" before asking).
pub fn classify(e: &object_store::Error) -> FailureKind {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => FailureKind::NoBucket,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => FailureKind::Denied,
        E::NotImplemented { .. } | E::NotSupported { .. } | E::InvalidPath { .. } => {
            FailureKind::Config
        }
        other => {
            let text = chain_text(other);
            match status_in(&text) {
                Some(429) => FailureKind::Throttled,
                Some(503) if text.contains("SlowDown") => FailureKind::Throttled,
                Some(401 | 403) => FailureKind::Denied,
                Some(404) => FailureKind::NoBucket,
                // A timeout answered as a status, a checksum damaged in transit: send again.
                Some(408) => FailureKind::Transient,
                Some(400) if text.contains("BadDigest") || text.contains("RequestTimeout") => {
                    FailureKind::Transient
                }
                Some(400)
                    if text.contains("InvalidAccessKeyId")
                        || text.contains("SignatureDoesNotMatch")
                        || text.contains("ExpiredToken") =>
                {
                    FailureKind::Denied
                }
                Some(300..=499) => FailureKind::Rejected,
                Some(_) => FailureKind::Transient,
                None => match io_kind(other) {
                    Some(std::io::ErrorKind::PermissionDenied) => FailureKind::Denied,
                    Some(std::io::ErrorKind::NotFound) => FailureKind::NoBucket,
                    _ => FailureKind::Transient,
                },
            }
        }
    }
}

/// Whether the error says the target does not take conditional writes (`If-None-Match`),
/// as some S3-compatible servers answer with 501.
pub fn conditional_unsupported(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. } => {
            true
        }
        other => status_in(&chain_text(other)) == Some(501),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: text.to_owned().into(),
        }
    }

    #[test]
    fn statuses_map_to_kinds() {
        for (text, kind) in [
            ("Server returned non-2xx status code: 503 Service Unavailable: <Code>SlowDown</Code>", FailureKind::Throttled),
            ("Server returned non-2xx status code: 429 Too Many Requests: ", FailureKind::Throttled),
            ("Server returned non-2xx status code: 503 Service Unavailable: ", FailureKind::Transient),
            ("Server returned non-2xx status code: 500 Internal Server Error: ", FailureKind::Transient),
            ("Server returned non-2xx status code: 400 Bad Request: <Code>InvalidAccessKeyId</Code>", FailureKind::Denied),
            ("Server returned non-2xx status code: 400 Bad Request: <Code>BadDigest</Code>", FailureKind::Transient),
            ("Server returned non-2xx status code: 400 Bad Request: <Code>InvalidBucketName</Code>", FailureKind::Rejected),
            ("Server returned non-2xx status code: 301 Moved Permanently: ", FailureKind::Rejected),
            ("error sending request: connection refused", FailureKind::Transient),
        ] {
            assert_eq!(classify(&generic(text)), kind, "{text}");
        }
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403".into(),
        };
        assert_eq!(classify(&denied), FailureKind::Denied);
        let missing = object_store::Error::NotFound {
            path: "k".into(),
            source: "NoSuchBucket".into(),
        };
        assert_eq!(classify(&missing), FailureKind::NoBucket);
        assert!(FailureKind::Denied.is_permanent() && FailureKind::NoBucket.is_permanent());
        assert!(!FailureKind::Throttled.is_permanent());
        assert!(FailureKind::Throttled.counts_against_target());
        assert!(!FailureKind::Denied.counts_against_target());
        let xml = "PUT k: Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><RequestId>1</RequestId></Error>";
        assert_eq!(
            tidy(xml),
            "PUT k: Server returned non-2xx status code: 404 Not Found: NoSuchBucket: The specified bucket does not exist"
        );
        assert_eq!(tidy("a\n  b"), "a b");
        assert_eq!(
            cause_text(&generic(xml)),
            "NoSuchBucket: The specified bucket does not exist (HTTP 404)"
        );
        assert_eq!(
            cause_text(&generic(
                "Error after 3 retries in 1.2s, max_retries:10, retry_timeout:180s, source:\
                 error sending request for url (http://127.0.0.1:1/b/k): Server returned \
                 non-2xx status code: 503 Service Unavailable: "
            )),
            "HTTP 503 Service Unavailable (after 3 retries)"
        );
        #[derive(Debug, thiserror::Error)]
        #[error("tcp connect error: Connection refused (os error 111)")]
        struct Refused;
        #[derive(Debug, thiserror::Error)]
        #[error("Error after 2 retries in 3ms, max_retries:10, source: error sending request")]
        struct Outer(#[source] Refused);
        assert_eq!(
            cause_text(&Outer(Refused)),
            "tcp connect error: Connection refused (os error 111) (after 2 retries)"
        );
        assert!(conditional_unsupported(&generic(
            "Server returned non-2xx status code: 501 Not Implemented: "
        )));
    }
}
