//! Encrypted database files: SQLCipher 4 keys on rusqlite connections.
//!
//! A key is 32 raw bytes handed to SQLCipher as `PRAGMA key = "x'<hex>'"`. A raw key skips
//! SQLCipher's passphrase derivation (PBKDF2, 256,000 rounds: ~250 ms per connection); the
//! caller derives it from a secret it already guards. The file is SQLCipher 4's default
//! format, so `sqlcipher` 4 and its Python binding open it with the same `PRAGMA key`.
//!
//! The key must be the first thing a connection does: any read (even `PRAGMA journal_mode`)
//! before it fails with SQLite's "file is not a database". Several keys may be offered (the
//! current one first, older ones after a rotation): each is tried with one small read.
//!
//! SQLCipher is compiled in only when the build enables it (the `sqlcipher` feature); a plain
//! SQLite silently ignores `PRAGMA key` and would write plaintext, so every function here
//! checks first and refuses a key the build cannot honour.
//!
//! An existing plaintext database is encrypted in place by [`prepare_file`] (a full copy
//! through `sqlcipher_export`, renamed over the original) and a database still under an older
//! key is re-keyed to the current one, both while nothing else has the file open.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::errors::translate;
use crate::error::{Error, ErrorCode, Result};

/// The first 16 bytes of every plaintext SQLite database file.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The salt SQLCipher keeps at the start of an encrypted file (instead of the header).
const SALT_LEN: usize = 16;

/// A 256-bit database key. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseKey([u8; 32]);

impl std::fmt::Debug for DatabaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseKey(redacted)")
    }
}

impl DatabaseKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DatabaseKey(bytes)
    }

    /// The key as SQLCipher's raw-key literal, `x'<64 hex digits>'`: what `PRAGMA key` (and a
    /// standard SQLCipher reader) takes.
    pub fn sql_literal(&self) -> String {
        format!("x'{}'", hex(&self.0))
    }

    /// The raw-key literal with an explicit salt, `x'<key><salt>'`: a copy keyed this way has
    /// the same salt as the file the salt came from, so that file's pages decrypt in it.
    fn sql_literal_with_salt(&self, salt: &[u8]) -> String {
        format!("x'{}{}'", hex(&self.0), hex(salt))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// True when the linked SQLite is SQLCipher (`PRAGMA cipher_version` answers only there).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        rusqlite::Connection::open_in_memory()
            .and_then(|c| {
                c.query_row("PRAGMA cipher_version", [], |r| r.get::<_, String>(0))
                    .map(|v| !v.is_empty())
            })
            .unwrap_or(false)
    })
}

/// The SQLCipher version, if the build has it (for `diag`).
pub fn version() -> Option<String> {
    let c = rusqlite::Connection::open_in_memory().ok()?;
    c.query_row("PRAGMA cipher_version", [], |r| r.get::<_, String>(0))
        .ok()
}

fn unavailable() -> Error {
    Error::invalid_input(
        "this build of edgestore cannot encrypt databases (it was built without the \
         `sqlcipher` feature); a database key is refused rather than ignored",
    )
}

/// What the start of a database file says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// No file, or an empty one: SQLite creates it, encrypted if a key is set.
    New,
    /// A plaintext SQLite database.
    Plain,
    /// Anything else: an encrypted database (or not a database at all).
    Encrypted,
}

/// Look at the first 16 bytes of `path`.
pub fn file_state(path: &Path) -> Result<FileState> {
    use std::io::Read as _;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::New),
        Err(e) => return Err(Error::io(format!("open database {}", path.display()), e)),
    };
    let mut head = [0u8; 16];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(format!("read database {}", path.display()), e)),
        }
    }
    Ok(match filled {
        0 => FileState::New,
        _ if &head == PLAIN_HEADER => FileState::Plain,
        _ => FileState::Encrypted,
    })
}

/// The error for an encrypted file no offered key opens.
fn no_key_opens(path: &Path, offered: usize) -> Error {
    let what = match offered {
        0 => "no database key is configured".to_owned(),
        1 => "the configured database key does not open it".to_owned(),
        n => format!("none of the {n} configured database keys opens it"),
    };
    Error::new(
        ErrorCode::KeyMissing,
        format!(
            "database {} is encrypted (or is not a SQLite database) and {what}: configure the \
             key the store was encrypted with (encryption.keyFile or EDGESTORE_KEY)",
            path.display()
        ),
    )
}

fn is_not_a_database(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase)
}

/// Set the first of `keys` that opens the database on `conn` (a fresh connection to `path`,
/// before any other statement) and return its index. A plaintext database is left unkeyed
/// (`None`: a reader beside an owner that has not encrypted it yet); with no keys, an
/// encrypted file is `key-missing` rather than SQLite's "not a database" (`corrupt`).
pub fn apply(
    conn: &rusqlite::Connection,
    path: &Path,
    keys: &[DatabaseKey],
) -> Result<Option<usize>> {
    let state = file_state(path)?;
    if keys.is_empty() {
        return match state {
            FileState::Encrypted => Err(no_key_opens(path, 0)),
            _ => Ok(None),
        };
    }
    if !available() {
        return Err(unavailable());
    }
    if state == FileState::Plain {
        return Ok(None);
    }
    // SQLCipher reports a wrong key on stderr besides returning the error; the error is ours
    // to report.
    conn.execute_batch("PRAGMA cipher_log_level = NONE")
        .map_err(translate)?;
    for (i, key) in keys.iter().enumerate() {
        conn.execute_batch(&format!("PRAGMA key = \"{}\"", key.sql_literal()))
            .map_err(translate)?;
        match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        }) {
            Ok(_) => return Ok(Some(i)),
            Err(e) if is_not_a_database(&e) => continue,
            Err(e) => return Err(translate(e)),
        }
    }
    Err(no_key_opens(path, keys.len()))
}

/// What [`prepare_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// Nothing to do: no file yet, or already under the current key.
    Unchanged,
    /// A plaintext database was encrypted in place.
    Encrypted,
    /// An encrypted database was re-keyed from an older key to the current one.
    Rekeyed,
}

/// Bring the database file at `path` under `keys[0]`: encrypt a plaintext file in place,
/// re-key one still under an older key. Only for the database's owner, before anything else
/// opens it (the plaintext copy is replaced by a rename; a connection open on it would go on
/// using the old file). A crash leaves either the old file or the new one, never a mix.
pub fn prepare_file(path: &Path, keys: &[DatabaseKey]) -> Result<Prepared> {
    let Some(current) = keys.first() else {
        return Ok(Prepared::Unchanged);
    };
    if !available() {
        return Err(unavailable());
    }
    let staging = staging_path(path);
    // A copy left by a crash mid-encryption: the original is still the plaintext database.
    remove_if_present(&staging)?;
    remove_if_present(&journal_of(&staging))?;
    match file_state(path)? {
        FileState::New => Ok(Prepared::Unchanged),
        FileState::Plain => {
            encrypt_in_place(path, &staging, current)?;
            Ok(Prepared::Encrypted)
        }
        FileState::Encrypted => {
            let conn = rusqlite::Connection::open(path).map_err(translate)?;
            match apply(&conn, path, keys)? {
                Some(0) | None => Ok(Prepared::Unchanged),
                Some(_) => {
                    conn.execute_batch(&format!("PRAGMA rekey = \"{}\"", current.sql_literal()))
                        .map_err(translate)?;
                    Ok(Prepared::Rekeyed)
                }
            }
        }
    }
}

/// `.NAME.encrypting` beside `path`.
fn staging_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.encrypting"))
}

fn journal_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-journal");
    PathBuf::from(s)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

fn encrypt_in_place(path: &Path, staging: &Path, key: &DatabaseKey) -> Result<()> {
    let display = path.display();
    {
        let conn = rusqlite::Connection::open(path).map_err(translate)?;
        // Everything into the main file, and the log emptied: the copy reads the main file
        // through this connection, and no old log may outlive the rename.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(translate)?;
        let user_version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(translate)?;
        let staging_name = staging.to_string_lossy().into_owned();
        conn.execute(
            "ATTACH DATABASE ?1 AS encrypted KEY ?2",
            rusqlite::params![staging_name, key.sql_literal()],
        )
        .map_err(translate)?;
        conn.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))
            .map_err(translate)?;
        conn.execute_batch(&format!(
            "PRAGMA encrypted.user_version = {user_version}; DETACH DATABASE encrypted;"
        ))
        .map_err(translate)?;
        // Back to the default journal mode, so closing removes the (empty) log.
        conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
            .map_err(translate)?;
    }
    let sync = |p: &Path| -> Result<()> {
        std::fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(format!("sync {}", p.display()), e))
    };
    sync(staging)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        if std::fs::metadata(&side).is_ok_and(|m| m.len() > 0) && suffix == "-wal" {
            return Err(Error::new(
                ErrorCode::Busy,
                format!(
                    "database {display} is in use by another process: it cannot be encrypted now"
                ),
            ));
        }
        remove_if_present(&side)?;
    }
    std::fs::rename(staging, path)
        .map_err(|e| Error::io(format!("replace {display} by its encrypted copy"), e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync(dir)?;
    }
    Ok(())
}

/// A copy of the database behind `source` (a keyed connection) into `dest_path`, keyed with the
/// same key and salt so pages of the source's log decrypt in it too: how an encrypted
/// database is snapshotted. `key` is the key `source` was opened with; `source_path` its file.
pub fn keyed_copy_destination(
    dest_path: &Path,
    key: &DatabaseKey,
    source_path: &Path,
) -> Result<rusqlite::Connection> {
    use std::io::Read as _;
    let mut salt = [0u8; SALT_LEN];
    std::fs::File::open(source_path)
        .and_then(|mut f| f.read_exact(&mut salt))
        .map_err(|e| Error::io(format!("read the salt of {}", source_path.display()), e))?;
    let conn = rusqlite::Connection::open(dest_path).map_err(translate)?;
    conn.execute_batch("PRAGMA cipher_log_level = NONE")
        .map_err(translate)?;
    conn.execute_batch(&format!(
        "PRAGMA key = \"{}\"",
        key.sql_literal_with_salt(&salt)
    ))
    .map_err(translate)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::sqlite::{SqliteDatabase, SqliteOptions};
    use crate::sql::{with_reader, with_writer};

    const SECRET: &str = "SECRET-ROW-TEXT-4711";

    fn key(n: u8) -> DatabaseKey {
        DatabaseKey::from_bytes([n; 32])
    }

    fn open(path: &Path, keys: &[DatabaseKey]) -> Result<SqliteDatabase> {
        let mut options = SqliteOptions::new(path.to_str().unwrap());
        options.keys = keys.to_vec();
        SqliteDatabase::open_with(options)
    }

    fn rows(db: &SqliteDatabase) -> usize {
        with_reader(db, |c| c.query("SELECT v FROM t", &[]))
            .unwrap()
            .len()
    }

    /// Every byte of the database's files, for a search of plaintext.
    fn raw_bytes(path: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            all.extend(std::fs::read(PathBuf::from(p)).unwrap_or_default());
        }
        all
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    /// On a plain SQLite build a key is refused, never ignored; the rest needs SQLCipher.
    fn sqlcipher_or_refused(dir: &Path) -> bool {
        if available() {
            return true;
        }
        let e = open(&dir.join("x.sqlite"), &[key(1)]).err().unwrap();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
        assert!(e.to_string().contains("sqlcipher"), "{e}");
        false
    }

    #[test]
    fn an_encrypted_database_holds_no_plaintext_and_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        if !sqlcipher_or_refused(dir.path()) {
            return;
        }
        let path = dir.path().join("enc.sqlite");
        {
            let db = open(&path, &[key(1)]).unwrap();
            with_writer(&db, |c| {
                c.execute("CREATE TABLE t(v TEXT)", &[])?;
                c.execute(&format!("INSERT INTO t VALUES ('{SECRET}')"), &[])
            })
            .unwrap();
            assert_eq!(rows(&db), 1);
            // While the log still holds the row, neither file shows it.
            let raw = raw_bytes(&path);
            assert!(!raw.is_empty());
            assert!(!contains(&raw, SECRET.as_bytes()));
            assert!(!contains(&raw, b"SQLite format 3"));
            assert!(!contains(&raw, b"CREATE TABLE"));
        }
        assert_eq!(file_state(&path).unwrap(), FileState::Encrypted);
        assert!(!contains(&raw_bytes(&path), SECRET.as_bytes()));
        assert_eq!(rows(&open(&path, &[key(1)]).unwrap()), 1);
        for keys in [vec![], vec![key(2)], vec![key(2), key(3)]] {
            let e = open(&path, &keys).err().unwrap();
            assert_eq!(e.code(), ErrorCode::KeyMissing, "{e}");
            assert!(e.to_string().contains("enc.sqlite"), "{e}");
        }
        // The file is untouched by the failed opens.
        assert_eq!(rows(&open(&path, &[key(1)]).unwrap()), 1);
    }

    #[test]
    fn a_plaintext_database_is_encrypted_in_place_keeping_everything() {
        let dir = tempfile::tempdir().unwrap();
        if !sqlcipher_or_refused(dir.path()) {
            return;
        }
        let path = dir.path().join("plain.sqlite");
        {
            let db = open(&path, &[]).unwrap();
            with_writer(&db, |c| {
                c.execute("CREATE TABLE t(v TEXT)", &[])?;
                c.execute("PRAGMA user_version = 7", &[])?;
                c.execute(&format!("INSERT INTO t VALUES ('{SECRET}'), ('b')"), &[])
            })
            .unwrap();
        }
        assert_eq!(file_state(&path).unwrap(), FileState::Plain);
        // A copy left by a crash mid-encryption is discarded, not mistaken for the database.
        std::fs::write(staging_path(&path), b"half a copy").unwrap();
        let db = open(&path, &[key(1)]).unwrap();
        assert_eq!(rows(&db), 2);
        let version = with_reader(&db, |c| c.query("PRAGMA user_version", &[])).unwrap();
        assert_eq!(version, vec![vec![crate::model::Value::Integer(7)]]);
        drop(db);
        assert_eq!(file_state(&path).unwrap(), FileState::Encrypted);
        assert!(!staging_path(&path).exists());
        assert!(!contains(&raw_bytes(&path), SECRET.as_bytes()));
        assert_eq!(prepare_file(&path, &[key(1)]).unwrap(), Prepared::Unchanged);
        let e = open(&path, &[]).err().unwrap();
        assert_eq!(e.code(), ErrorCode::KeyMissing, "{e}");
    }

    #[test]
    fn an_older_key_opens_and_the_owner_rekeys_to_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        if !sqlcipher_or_refused(dir.path()) {
            return;
        }
        let path = dir.path().join("r.sqlite");
        {
            let db = open(&path, &[key(1)]).unwrap();
            with_writer(&db, |c| {
                c.execute("CREATE TABLE t(v TEXT)", &[])?;
                c.execute("INSERT INTO t VALUES ('a')", &[])
            })
            .unwrap();
        }
        // A reader offered the new key and the old one opens without changing the file.
        let mut reader = SqliteOptions::new(path.to_str().unwrap());
        reader.read_only = true;
        reader.keys = vec![key(2), key(1)];
        assert_eq!(rows(&SqliteDatabase::open_with(reader).unwrap()), 1);
        assert_eq!(rows(&open(&path, &[key(1)]).unwrap()), 1);
        // The owner with the rotated keys re-keys it.
        assert_eq!(
            prepare_file(&path, &[key(2), key(1)]).unwrap(),
            Prepared::Rekeyed
        );
        assert_eq!(rows(&open(&path, &[key(2)]).unwrap()), 1);
        let e = open(&path, &[key(1)]).err().unwrap();
        assert_eq!(e.code(), ErrorCode::KeyMissing, "{e}");
    }

    #[test]
    fn a_reader_with_a_key_still_reads_a_plaintext_database() {
        let dir = tempfile::tempdir().unwrap();
        if !sqlcipher_or_refused(dir.path()) {
            return;
        }
        let path = dir.path().join("p.sqlite");
        let owner = open(&path, &[]).unwrap();
        with_writer(&owner, |c| {
            c.execute("CREATE TABLE t(v TEXT)", &[])?;
            c.execute("INSERT INTO t VALUES ('a')", &[])
        })
        .unwrap();
        let mut reader = SqliteOptions::new(path.to_str().unwrap());
        reader.read_only = true;
        reader.keys = vec![key(1)];
        assert_eq!(rows(&SqliteDatabase::open_with(reader).unwrap()), 1);
        assert_eq!(file_state(&path).unwrap(), FileState::Plain);
    }

    #[test]
    fn a_snapshot_copy_keyed_with_the_salt_reads_with_the_key() {
        let dir = tempfile::tempdir().unwrap();
        if !sqlcipher_or_refused(dir.path()) {
            return;
        }
        let path = dir.path().join("s.sqlite");
        let db = open(&path, &[key(1)]).unwrap();
        with_writer(&db, |c| {
            c.execute("CREATE TABLE t(v TEXT)", &[])?;
            c.execute(&format!("INSERT INTO t VALUES ('{SECRET}')"), &[])
        })
        .unwrap();
        let source = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(apply(&source, &path, &[key(1)]).unwrap(), Some(0));
        let copy_path = dir.path().join("copy.sqlite");
        {
            let mut copy = keyed_copy_destination(&copy_path, &key(1), &path).unwrap();
            let backup = rusqlite::backup::Backup::new(&source, &mut copy).unwrap();
            backup.step(-1).unwrap();
        }
        let salt = |p: &Path| std::fs::read(p).unwrap()[..SALT_LEN].to_vec();
        assert_eq!(salt(&copy_path), salt(&path));
        assert!(!contains(&raw_bytes(&copy_path), SECRET.as_bytes()));
        assert_eq!(rows(&open(&copy_path, &[key(1)]).unwrap()), 1);
    }

    #[test]
    fn debug_never_shows_a_key() {
        assert_eq!(format!("{:?}", key(0xab)), "DatabaseKey(redacted)");
        assert_eq!(key(0xab).sql_literal(), format!("x'{}'", "ab".repeat(32)));
    }
}
