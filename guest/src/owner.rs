//! Who owns a data directory: the lock file's name and what it says.
//!
//! Exactly one process writes a data directory at a time: its *owner*. The owner holds the lock
//! file [`LOCK_FILE`] in the data directory for its whole life and writes an [`OwnerRecord`]
//! into it (who, since when, where to send mutations). Everyone else only reads: inspection
//! opens the spool without recovery and the database read-only, and names the owner.
//!
//! How the lock is held depends on the platform, the record does not:
//! * natively (the host, for both engines) the file is locked with an OS lock (`flock`), which
//!   dies with the process: a killed owner leaves a file whose lock anyone can take again;
//! * inside WASI (the standalone component) there are no locks: the file's existence is the
//!   lock (created with `create_new`, removed on exit), like SQLite's dot-file locking, so a
//!   killed standalone owner leaves the file and the next one names it for removal.
//!
//! The owner removes the file when it ends cleanly. A file holding a record whose lock nobody
//! holds is *stale*: its process died.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};

/// The lock file, directly in the data directory.
pub const LOCK_FILE: &str = ".edgestore.lock";
/// The owner's admin socket (a Unix socket serving HTTP), directly in the data directory.
pub const ADMIN_SOCKET: &str = ".edgestore.sock";

/// How an owner holds its lock, which tells a reader how to check that it is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockKind {
    /// An OS lock on the file (the native host): alive while the lock is held.
    Os,
    /// The file's existence (WASI): alive until the file is removed.
    File,
}

/// What the lock file says about its owner (one JSON object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// Process id, where the platform has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The command that owns the directory, e.g. `edgestore serve`.
    pub command: String,
    /// When it took ownership, UTC milliseconds.
    pub since_ms: i64,
    /// The admin endpoint mutations can be forwarded to (a socket path), if it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// How the lock is held.
    pub lock: LockKind,
}

impl OwnerRecord {
    /// The record as the file's bytes (one JSON line).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parse the file's bytes. `Ok(None)` for an empty file (an owner between creating the
    /// file and writing its record, or one that ended); a malformed record is `corrupt`.
    pub fn parse(bytes: &[u8]) -> Result<Option<OwnerRecord>> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(bytes).map(Some).map_err(|e| {
            Error::new(
                ErrorCode::Corrupt,
                format!("lock file {LOCK_FILE} does not hold an owner record: {e}"),
            )
        })
    }

    /// `edgestore serve (pid 4242, since 2026-11-30T20:00:00Z)`.
    pub fn describe(&self) -> String {
        let since = crate::model::Timestamp(self.since_ms).to_rfc3339();
        match self.pid {
            Some(pid) => format!("{} (pid {pid}, since {since})", self.command),
            None => format!("{} (since {since})", self.command),
        }
    }
}

/// The one error for "someone else owns this directory": `busy` (transient: it ends when the
/// owner stops), naming the owner and what to do.
pub fn owned_error(data_dir: &str, owner: Option<&OwnerRecord>, hint: &str) -> Error {
    let who = owner.map_or_else(
        || "another edgestore process".to_owned(),
        OwnerRecord::describe,
    );
    Error::new(
        ErrorCode::Busy,
        format!("data directory {data_dir} is owned by {who}; {hint}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_describes() {
        let r = OwnerRecord {
            pid: Some(4242),
            command: "edgestore serve".into(),
            since_ms: 0,
            admin: Some("/d/.edgestore.sock".into()),
            lock: LockKind::Os,
        };
        assert_eq!(OwnerRecord::parse(&r.to_bytes()).unwrap(), Some(r.clone()));
        assert_eq!(
            r.describe(),
            "edgestore serve (pid 4242, since 1970-01-01T00:00:00Z)"
        );
        assert_eq!(OwnerRecord::parse(b"").unwrap(), None);
        assert_eq!(OwnerRecord::parse(b" \n").unwrap(), None);
        let bad = OwnerRecord::parse(b"{nope").unwrap_err();
        assert_eq!(bad.code(), ErrorCode::Corrupt);
        let e = owned_error("d", Some(&r), "stop it first");
        assert_eq!(e.code(), ErrorCode::Busy);
        assert!(e.to_string().contains("owned by edgestore serve (pid 4242"));
    }
}
