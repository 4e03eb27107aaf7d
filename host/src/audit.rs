//! The audit log: every mutating operation and every refused access of a store, one JSON line
//! per call (never per row), hash-chained, in the data directory's `.audit/`.
//!
//! Each line carries `seq` (1, 2, ... across files) and `prev`, the SHA-256 of the previous
//! line's bytes (64 zeros for the first), so altering, removing or reordering a line breaks
//! the chain where it happened; `HEAD` records the last line's `seq` and hash, so a log cut
//! short is seen too. Files rotate at `audit.maxBytes`; the chain continues into the next
//! file. [`verify`] (`edgestore audit verify`) walks it all and names the first bad line.
//!
//! Lines are written through the page cache (a killed process loses nothing); `HEAD` is
//! replaced after each append. After a crash in the middle of a line, the torn tail is cut at
//! the next open (it was never part of the chain); verification reports such a tail as torn,
//! not as tampering.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// The audit directory inside the data directory.
pub const AUDIT_DIR: &str = ".audit";
/// Default size at which a log file rotates.
pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;
const HEAD: &str = "HEAD";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

tokio::task_local! {
    /// Through which door the operations of the current task came (`admin-socket`,
    /// `http 1.2.3.4:5678`): set around a forwarded request, read by [`current_via`].
    pub static AUDIT_VIA: String;
}

/// The door of the current task's operations, if one was set ([`AUDIT_VIA`]).
pub fn current_via() -> Option<String> {
    AUDIT_VIA.try_with(Clone::clone).ok()
}

/// The `audit` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Keep the audit log (the data directory's owner writes it).
    pub enabled: bool,
    /// A log file's size before the next one starts (the chain continues), bytes.
    pub max_bytes: u64,
}

impl Default for AuditConfig {
    /// On, 16 MiB files.
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// What happened, as the caller knows it.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// `spool.put`, `db.delete`, `restore`, `ingest.auth`, ...
    pub op: String,
    /// What it acted on: a spool path, a table, a directory, a peer.
    pub target: String,
    /// Rows, segments or objects it touched, when it counts any.
    pub count: Option<u64>,
    /// The error, if it failed: its code and message.
    pub error: Option<(String, String)>,
    /// Whether it was an access refused (sandbox, grant, authentication).
    pub refused: bool,
    /// Through which door it came: `admin-socket`, `http <peer>`, or the process itself.
    pub via: Option<String>,
}

/// One line, fields in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// The writing process.
    pub pid: u32,
    /// `native` or `component`.
    pub engine: String,
    /// The command that owns the store (`edgestore serve`, ...).
    pub command: String,
    /// Through which door the operation came, when not the process itself.
    #[serde(default)]
    pub via: Option<String>,
    /// The operation.
    pub op: String,
    /// What it acted on.
    pub target: String,
    /// What it touched.
    #[serde(default)]
    pub count: Option<u64>,
    /// `ok`, `error` or `refused`.
    pub outcome: String,
    /// The error code (`access-denied`, `disk-full`, ...).
    #[serde(default)]
    pub code: Option<String>,
    /// The error message.
    #[serde(default)]
    pub message: Option<String>,
    /// SHA-256 of the previous line, hex.
    pub prev: String,
    /// On a checkpoint line (`op` `audit.checkpoint`): HMAC-SHA256 of `prev` under the
    /// store's audit key, hex. Only a key holder can write one, so a chain rewritten without
    /// the key fails at its first checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The operation of a checkpoint line.
pub const CHECKPOINT_OP: &str = "audit.checkpoint";

/// A checkpoint follows every this many lines (and every rotation).
pub const CHECKPOINT_EVERY: u64 = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    file: String,
    seq: u64,
    hash: String,
}

struct Writer {
    dir: PathBuf,
    file: File,
    name: String,
    bytes: u64,
    seq: u64,
    prev: String,
}

/// An open audit log (the store's owner writes it).
pub struct AuditLog {
    writer: Mutex<Writer>,
    max_bytes: u64,
    engine: &'static str,
    command: String,
    /// The key checkpoints are written with (derived from the store's age identity).
    mac_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

fn file_name(index: u64) -> String {
    format!("audit-{index:010}.jsonl")
}

fn file_index(name: &str) -> Option<u64> {
    name.strip_prefix("audit-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

fn hash(line: &[u8]) -> String {
    crate::digest::sha256_hex(line)
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_millisecond(now.millisecond())
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The log files of the data directory `data_dir` that are finished (rotated: every one but
/// the newest, which is still being written), in chain order.
pub fn finished_files(data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = data_dir.join(AUDIT_DIR);
    let mut names = files(&dir)?;
    names.pop();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// The log files in `dir`, in chain order.
fn files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<(u64, String)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                Some((file_index(&name)?, name))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    names.sort();
    Ok(names.into_iter().map(|(_, n)| n).collect())
}

impl AuditLog {
    /// Open (creating) the log in `data_dir/.audit`, cutting a torn last line left by a crash,
    /// and continue its chain.
    pub fn open(
        data_dir: &Path,
        max_bytes: u64,
        engine: &'static str,
        command: &str,
    ) -> std::io::Result<AuditLog> {
        let dir = data_dir.join(AUDIT_DIR);
        std::fs::create_dir_all(&dir)?;
        let names = files(&dir)?;
        let name = names.last().cloned().unwrap_or_else(|| file_name(1));
        let path = dir.join(&name);
        let (mut seq, mut prev) = (0, GENESIS.to_owned());
        if let Some(previous) = names.iter().rev().find(|n| **n != name) {
            // The chain continues from the previous file when this one is empty.
            if let Some((s, h)) = last_line(&dir.join(previous))? {
                (seq, prev) = (s, h);
            }
        }
        let mut valid_len = 0u64;
        if path.exists() {
            let bytes = std::fs::read(&path)?;
            let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            valid_len = complete as u64;
            if let Some(last) = bytes[..complete]
                .split(|b| *b == b'\n')
                .rfind(|l| !l.is_empty())
            {
                if let Ok(line) = serde_json::from_slice::<AuditLine>(last) {
                    seq = line.seq;
                    prev = hash(last);
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)?;
        // A torn tail (a crash in the middle of a line) was never part of the chain.
        file.set_len(valid_len)?;
        let mut file = file;
        use std::io::Seek as _;
        file.seek(std::io::SeekFrom::End(0))?;
        Ok(AuditLog {
            writer: Mutex::new(Writer {
                dir,
                file,
                name,
                bytes: valid_len,
                seq,
                prev,
            }),
            max_bytes: max_bytes.max(4096),
            engine,
            command: command.to_owned(),
            mac_key: None,
        })
    }

    /// Append one line for `event`. Failing to write the audit log is returned: the caller
    /// decides (the store reports it and goes on; the operation already happened).
    pub fn append(&self, event: &AuditEvent) -> std::io::Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let rotated = self.write_line(&mut w, event, None)?;
        if let Some(key) = &self.mac_key {
            if rotated || w.seq.is_multiple_of(CHECKPOINT_EVERY) {
                let mac = crate::digest::hmac_sha256_hex(key, w.prev.as_bytes());
                let checkpoint = AuditEvent {
                    op: CHECKPOINT_OP.into(),
                    ..AuditEvent::default()
                };
                self.write_line(&mut w, &checkpoint, Some(mac))?;
            }
        }
        Ok(())
    }

    /// Write one line (rotating first when the file is full); true if it rotated.
    fn write_line(
        &self,
        w: &mut Writer,
        event: &AuditEvent,
        mac: Option<String>,
    ) -> std::io::Result<bool> {
        let rotated = w.bytes >= self.max_bytes;
        if rotated {
            w.file.sync_all()?;
            let next = file_index(&w.name).unwrap_or(1) + 1;
            let name = file_name(next);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(w.dir.join(&name))?;
            w.file = file;
            w.name = name;
            w.bytes = 0;
        }
        let (outcome, code, message) = match (&event.error, event.refused) {
            (_, true) => (
                "refused",
                event.error.as_ref().map(|e| e.0.clone()),
                event.error.as_ref().map(|e| e.1.clone()),
            ),
            (Some((c, m)), false) => ("error", Some(c.clone()), Some(m.clone())),
            (None, false) => ("ok", None, None),
        };
        let line = AuditLine {
            seq: w.seq + 1,
            time: now_rfc3339(),
            pid: std::process::id(),
            engine: self.engine.to_owned(),
            command: self.command.clone(),
            via: event.via.clone(),
            op: event.op.clone(),
            target: event.target.clone(),
            count: event.count,
            outcome: outcome.to_owned(),
            code,
            message,
            prev: w.prev.clone(),
            mac,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        let line_hash = hash(&bytes);
        bytes.push(b'\n');
        w.file.write_all(&bytes)?;
        w.bytes += bytes.len() as u64;
        w.seq = line.seq;
        w.prev = line_hash.clone();
        let head = Head {
            file: w.name.clone(),
            seq: w.seq,
            hash: line_hash,
        };
        let tmp = w.dir.join(format!("{HEAD}.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_vec(&head).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, w.dir.join(HEAD))?;
        Ok(rotated)
    }

    /// Sign the chain so far with a checkpoint line (when there is a key and a chain): a store
    /// does this when it opens, so what every earlier process wrote is covered.
    pub fn checkpoint(&self) -> std::io::Result<()> {
        let Some(key) = &self.mac_key else {
            return Ok(());
        };
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if w.seq == 0 {
            return Ok(());
        }
        let mac = crate::digest::hmac_sha256_hex(key, w.prev.as_bytes());
        let checkpoint = AuditEvent {
            op: CHECKPOINT_OP.into(),
            ..AuditEvent::default()
        };
        self.write_line(&mut w, &checkpoint, Some(mac)).map(|_| ())
    }

    /// Write checkpoints (HMAC lines) with `key` from now on.
    pub fn with_mac_key(mut self, key: Vec<u8>) -> Self {
        self.mac_key = Some(key);
        self
    }
}

/// The last complete line's `seq` and hash.
fn last_line(path: &Path) -> std::io::Result<Option<(u64, String)>> {
    let bytes = std::fs::read(path)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    Ok(bytes[..complete]
        .split(|b| *b == b'\n')
        .rfind(|l| !l.is_empty())
        .and_then(|l| {
            serde_json::from_slice::<AuditLine>(l)
                .ok()
                .map(|line| (line.seq, hash(l)))
        }))
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    /// Files walked.
    pub files: usize,
    /// Lines in the chain that hold.
    pub lines: u64,
    /// The first break: `FILE line N: what`; `None` when the chain holds.
    pub first_bad: Option<String>,
    /// Checkpoints whose HMAC a given key confirmed.
    pub checkpoints_verified: u64,
    /// Checkpoints seen but not checked (no key given).
    pub checkpoints_unchecked: u64,
    /// The last line a verified checkpoint covers (lines after it hold by the chain alone).
    pub covered_to_seq: u64,
    /// A torn last line left by a crash (not counted as a break).
    pub torn_tail: bool,
}

impl AuditReport {
    /// Whether the chain holds.
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Walk the chain in `data_dir/.audit` and name the first line that breaks it; with
/// `mac_keys`, also check every checkpoint's HMAC against them (any one may have written it:
/// keys rotate).
pub fn verify(data_dir: &Path, mac_keys: &[Vec<u8>]) -> std::io::Result<AuditReport> {
    let dir = data_dir.join(AUDIT_DIR);
    let names = files(&dir)?;
    let mut report = AuditReport {
        files: names.len(),
        lines: 0,
        first_bad: None,
        checkpoints_verified: 0,
        checkpoints_unchecked: 0,
        covered_to_seq: 0,
        torn_tail: false,
    };
    let mut prev = GENESIS.to_owned();
    let mut expected = 1u64;
    let mut last = (String::new(), 0u64);
    let head: Option<Head> = std::fs::read(dir.join(HEAD))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    for (fi, name) in names.iter().enumerate() {
        let reader = BufReader::new(File::open(dir.join(name))?);
        let is_last_file = fi + 1 == names.len();
        let mut lines = reader.split(b'\n').peekable();
        let mut number = 0u64;
        while let Some(raw) = lines.next() {
            let raw = raw?;
            number += 1;
            let at = format!("{AUDIT_DIR}/{name} line {number}");
            let line = match serde_json::from_slice::<AuditLine>(&raw) {
                Ok(l) => l,
                Err(e) => {
                    let at_end = is_last_file && lines.peek().is_none();
                    if at_end && head.as_ref().is_none_or(|h| h.seq < expected) {
                        // A crash in the middle of the last line: never part of the chain.
                        report.torn_tail = true;
                        break;
                    }
                    report.first_bad = Some(format!("{at}: not an audit line ({e})"));
                    return Ok(report);
                }
            };
            if line.seq != expected {
                let what = if line.seq > expected {
                    format!(
                        "seq {} where {expected} was due: {} line(s) before it were removed",
                        line.seq,
                        line.seq - expected
                    )
                } else {
                    format!(
                        "seq {} where {expected} was due: lines were reordered or repeated",
                        line.seq
                    )
                };
                report.first_bad = Some(format!("{at}: {what}"));
                return Ok(report);
            }
            if line.prev != prev {
                let previous = if number > 1 {
                    format!("line {}", number - 1)
                } else {
                    "the previous file's last line".to_owned()
                };
                report.first_bad = Some(format!(
                    "{at}: the hash it records for {previous} does not match: {previous} was altered"
                ));
                return Ok(report);
            }
            if let Some(mac) = &line.mac {
                if mac_keys.is_empty() {
                    report.checkpoints_unchecked += 1;
                } else if mac_keys
                    .iter()
                    .any(|k| crate::digest::hmac_sha256_hex(k, line.prev.as_bytes()) == *mac)
                {
                    report.checkpoints_verified += 1;
                    report.covered_to_seq = line.seq;
                } else {
                    report.first_bad = Some(format!(
                        "{at}: checkpoint HMAC does not match the given keys: the chain before \
                         it was rewritten by someone without the key (or the key is not the \
                         one it was written with)"
                    ));
                    return Ok(report);
                }
            }
            prev = hash(&raw);
            expected += 1;
            report.lines += 1;
            last = (name.clone(), line.seq);
        }
    }
    if let Some(h) = head {
        if h.seq > last.1 {
            report.first_bad =
                Some(format!(
                "{AUDIT_DIR}/{}: the log ends at seq {} but HEAD recorded seq {}: it was cut short",
                if last.0.is_empty() { h.file.clone() } else { last.0 },
                last.1,
                h.seq
            ));
        } else if h.seq == last.1 && h.hash != prev {
            report.first_bad = Some(format!(
                "{AUDIT_DIR}/{} line {}: its hash is not the one HEAD recorded: it was altered",
                last.0, h.seq
            ));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: u64) -> AuditEvent {
        AuditEvent {
            op: "spool.put".into(),
            target: "metrics".into(),
            count: Some(i),
            ..AuditEvent::default()
        }
    }

    fn log_with(lines: u64, max_bytes: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), max_bytes, "native", "test").unwrap();
        for i in 0..lines {
            log.append(&event(i)).unwrap();
        }
        dir
    }

    fn first_file(dir: &Path) -> PathBuf {
        dir.join(AUDIT_DIR).join(file_name(1))
    }

    fn edit(dir: &Path, f: impl FnOnce(&mut Vec<String>)) {
        let path = first_file(dir);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        f(&mut lines);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn an_untouched_log_verifies_across_rotation_and_reopening() {
        let dir = log_with(500, 8192);
        let log = AuditLog::open(dir.path(), 8192, "native", "again").unwrap();
        log.append(&event(0)).unwrap();
        let report = verify(dir.path(), &[]).unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.lines, 501);
        assert!(report.files > 5, "{report:?}");
    }

    #[test]
    fn tampering_is_named_at_its_line() {
        type Edit = Box<dyn FnOnce(&mut Vec<String>)>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "altered",
                Box::new(|l: &mut Vec<String>| l[9] = l[9].replace("spool.put", "spool.get")),
                "line 10 was altered",
            ),
            (
                "removed",
                Box::new(|l: &mut Vec<String>| drop(l.remove(9))),
                "line 10: seq 11 where 10 was due",
            ),
            (
                "reordered",
                Box::new(|l: &mut Vec<String>| l.swap(4, 5)),
                "line 5: seq 6 where 5 was due",
            ),
            (
                "truncated",
                Box::new(|l: &mut Vec<String>| l.truncate(15)),
                "cut short",
            ),
        ];
        for (what, f, expected) in cases {
            let dir = log_with(20, DEFAULT_MAX_BYTES);
            edit(dir.path(), f);
            let report = verify(dir.path(), &[]).unwrap();
            let bad = report.first_bad.unwrap_or_default();
            assert!(bad.contains(expected), "{what}: {bad}");
        }
    }

    #[test]
    fn a_hundred_thousand_lines_and_a_crash_still_verify() {
        let dir = log_with(100_000, DEFAULT_MAX_BYTES);
        // The process dies in the middle of the next line.
        let names = files(&dir.path().join(AUDIT_DIR)).unwrap();
        let last = dir.path().join(AUDIT_DIR).join(names.last().unwrap());
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        f.write_all(br#"{"seq":100001,"ti"#).unwrap();
        let report = verify(dir.path(), &[]).unwrap();
        assert!(report.ok() && report.torn_tail, "{report:?}");
        assert_eq!(report.lines, 100_000);
    }

    #[test]
    fn a_torn_last_line_is_cut_at_open_and_never_a_break() {
        let dir = log_with(10, DEFAULT_MAX_BYTES);
        let path = first_file(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        // A crash while writing line 11: part of it reached the file, HEAD still says 10.
        bytes.extend_from_slice(br#"{"seq":11,"time":"2026"#);
        std::fs::write(&path, &bytes).unwrap();
        let report = verify(dir.path(), &[]).unwrap();
        assert!(report.ok() && report.torn_tail, "{report:?}");
        let log = AuditLog::open(dir.path(), DEFAULT_MAX_BYTES, "native", "t").unwrap();
        log.append(&event(11)).unwrap();
        let report = verify(dir.path(), &[]).unwrap();
        assert!(report.ok() && !report.torn_tail, "{report:?}");
        assert_eq!(report.lines, 11);
    }

    #[test]
    fn checkpoints_catch_a_chain_rewritten_without_the_key() {
        let key = b"the store's audit key".to_vec();
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), DEFAULT_MAX_BYTES, "native", "test")
            .unwrap()
            .with_mac_key(key.clone());
        for i in 0..250 {
            log.append(&event(i)).unwrap();
        }
        drop(log);
        let report = verify(dir.path(), std::slice::from_ref(&key)).unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(
            (report.checkpoints_verified, report.covered_to_seq),
            (2, 201)
        );
        let keyless = verify(dir.path(), &[]).unwrap();
        assert!(
            keyless.ok() && keyless.checkpoints_unchecked == 2,
            "{keyless:?}"
        );
        let wrong = verify(dir.path(), &[b"another key".to_vec()]).unwrap();
        assert!(wrong.first_bad.unwrap().contains("line 101"));

        // A forger changes line 5 and re-chains everything after it, HEAD included: the
        // chain alone cannot tell, the first checkpoint can.
        let path = first_file(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        let mut prev = GENESIS.to_owned();
        let mut out = String::new();
        let mut last = (0, String::new());
        for raw in text.lines() {
            let mut line: AuditLine = serde_json::from_str(raw).unwrap();
            if line.seq == 5 {
                line.target = "forged".into();
            }
            line.prev = prev.clone();
            let bytes = serde_json::to_vec(&line).unwrap();
            prev = hash(&bytes);
            last = (line.seq, prev.clone());
            out.push_str(std::str::from_utf8(&bytes).unwrap());
            out.push('\n');
        }
        std::fs::write(&path, out).unwrap();
        let head = Head {
            file: file_name(1),
            seq: last.0,
            hash: last.1,
        };
        std::fs::write(
            dir.path().join(AUDIT_DIR).join(HEAD),
            serde_json::to_vec(&head).unwrap(),
        )
        .unwrap();
        assert!(
            verify(dir.path(), &[]).unwrap().ok(),
            "the chain alone holds"
        );
        let report = verify(dir.path(), &[key]).unwrap();
        let bad = report.first_bad.unwrap();
        assert!(bad.contains("line 101") && bad.contains("HMAC"), "{bad}");
    }
}
