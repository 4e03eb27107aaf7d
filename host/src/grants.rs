//! What an instance may touch: one data directory (opened by the host through cap-std, granted
//! read-write or read-only) and a set of SQLite labels, each backed by a database file inside
//! that directory or by a private in-memory database.
//!
//! The rule that maps labels to files is the embedder's, never the guest's: a label names a
//! [`DbTarget`] chosen at configuration time, and a file target is a single plain file name
//! (letters, digits, `-`, `_`, `.`; no separators, no `..`, not hidden) resolved inside the
//! data directory ([`Grants::database_path`]). The guest only ever passes a label. Everything
//! is validated when the store opens: every granted label is configured, every name is safe.
//! The label and file-name rules are the core's ([`edgestore::layout`]), shared with the
//! standalone component; here a bad one is a configuration mistake ([`Error::Config`]), while
//! failing to create, open or resolve the data directory is an I/O error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use edgestore::layout;
use edgestore::sql::sqlite::cipher::{self, DatabaseKey, Prepared};
use edgestore::ErrorCode;

use crate::error::{Error, Result};

pub use edgestore::layout::{
    DEFAULT_DATABASE_FILE, DEFAULT_LABEL, MAX_FILE_NAME_LEN, MAX_LABEL_LEN,
};

/// What backs a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTarget {
    /// A database file directly inside the data directory (a plain file name).
    File(String),
    /// A private in-memory database, kept by the host for the store's life (it survives an
    /// instance being rebuilt, not the store being closed).
    Memory,
}

/// Labels configured for a store, and which of them the instance may open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// Every configured label and what backs it.
    pub configured: BTreeMap<String, DbTarget>,
    /// The labels the instance may open (each must be configured).
    pub granted: BTreeSet<String>,
}

impl Default for Labels {
    /// `default` -> `edgestore.sqlite`, granted.
    fn default() -> Self {
        Labels::new().grant(
            DEFAULT_LABEL,
            DbTarget::File(DEFAULT_DATABASE_FILE.to_owned()),
        )
    }
}

impl Labels {
    /// No labels at all.
    pub fn new() -> Self {
        Labels {
            configured: BTreeMap::new(),
            granted: BTreeSet::new(),
        }
    }

    /// Configure `label` -> `target` and grant it.
    pub fn grant(mut self, label: &str, target: DbTarget) -> Self {
        self.configured.insert(label.to_owned(), target);
        self.granted.insert(label.to_owned());
        self
    }

    /// Configure `label` -> `target` without granting it (opening it is `access-denied`).
    pub fn configure(mut self, label: &str, target: DbTarget) -> Self {
        self.configured.insert(label.to_owned(), target);
        self
    }
}

/// How the instance may open a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelAccess<'a> {
    /// Granted: open this.
    Granted(&'a DbTarget),
    /// Configured but not granted.
    Denied,
    /// Not configured.
    Unknown,
}

/// The validated grants of one store.
#[derive(Debug)]
pub struct Grants {
    data_dir: PathBuf,
    dir: Dir,
    read_only: bool,
    labels: Labels,
    database_keys: Vec<DatabaseKey>,
}

/// Check a label by the core's rule ([`layout::check_label`]); a bad one is a configuration
/// mistake.
pub fn check_label(label: &str) -> Result<()> {
    layout::check_label(label).map_err(|e| Error::Config(e.message().to_owned()))
}

/// Check a database file name by the core's rule ([`layout::check_database_file`]: one plain
/// path component inside the data directory); a bad one is a configuration mistake.
pub fn check_file_name(name: &str) -> Result<()> {
    layout::check_database_file(name).map_err(|e| Error::Config(e.message().to_owned()))
}

impl Grants {
    /// Open `data_dir` (created if missing, unless read-only) with cap-std and validate
    /// `labels`.
    pub fn new(data_dir: &Path, read_only: bool, labels: Labels) -> Result<Self> {
        for (label, target) in &labels.configured {
            check_label(label)?;
            if let DbTarget::File(name) = target {
                check_file_name(name)?;
            }
        }
        for label in &labels.granted {
            if !labels.configured.contains_key(label) {
                return Err(Error::Config(format!(
                    "label {label:?} is granted but not configured"
                )));
            }
        }
        // The directory itself failing is the disk's or the system's doing, not the
        // configuration's: an I/O error (classified by its kind), as the breaker counts it.
        let io = |what: &str, e: std::io::Error| {
            Error::Store(edgestore::Error::io(
                format!("{what} data directory {}", data_dir.display()),
                e,
            ))
        };
        if !read_only {
            create_data_dir(data_dir).map_err(|e| io("create", e))?;
        }
        check_not_world_writable(data_dir, "data directory")?;
        let dir =
            Dir::open_ambient_dir(data_dir, ambient_authority()).map_err(|e| io("open", e))?;
        let data_dir = data_dir.canonicalize().map_err(|e| io("resolve", e))?;
        Ok(Grants {
            data_dir,
            dir,
            read_only,
            labels,
            database_keys: Vec::new(),
        })
    }

    /// Every file database of these grants is encrypted under `keys` (current first; see
    /// [`edgestore::sql::sqlite::cipher`]); both engines key their connections with them.
    pub fn with_database_keys(mut self, keys: Vec<DatabaseKey>) -> Self {
        self.database_keys = keys;
        self
    }

    /// The database keys, current first (empty: databases are not encrypted).
    pub fn database_keys(&self) -> &[DatabaseKey] {
        &self.database_keys
    }

    /// The owner's step before any engine opens a database: each configured file database is
    /// brought under the current key (a plaintext one encrypted in place, one under an older
    /// key re-keyed). Returns the files changed, with what was done.
    pub fn prepare_databases(&self) -> edgestore::Result<Vec<(String, Prepared)>> {
        let mut changed = Vec::new();
        if self.read_only || self.database_keys.is_empty() {
            return Ok(changed);
        }
        let mut names: Vec<&str> = self
            .labels
            .configured
            .values()
            .filter_map(|t| match t {
                DbTarget::File(name) => Some(name.as_str()),
                DbTarget::Memory => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let path = self.database_path(name)?;
            let done = cipher::prepare_file(&path, &self.database_keys)?;
            if done != Prepared::Unchanged {
                changed.push((name.to_owned(), done));
            }
        }
        Ok(changed)
    }

    /// The data directory (canonical path).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The data directory as a capability.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// True for a read-only grant.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The path of the database file `name` (a [`DbTarget::File`]) inside the data directory,
    /// once checked through the directory's capability: neither the file nor its
    /// `-wal`/`-shm`/`-journal` companions may be a symlink or anything but a regular file
    /// (`permission-denied`). Both engines open database files through this.
    pub fn database_path(&self, name: &str) -> edgestore::Result<PathBuf> {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let file = format!("{name}{suffix}");
            match self.dir.symlink_metadata(&file) {
                Ok(meta) if meta.file_type().is_symlink() || !meta.is_file() => {
                    return Err(edgestore::Error::new(
                        ErrorCode::PermissionDenied,
                        format!("database file {file:?} is not a regular file inside the grant"),
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(edgestore::Error::io(format!("inspect {file}"), e)),
            }
        }
        Ok(self.data_dir.join(name))
    }

    /// What opening `label` may do: access-denied is decided before no-such-database, so a
    /// guest cannot probe which labels exist beyond its grant... except that an unknown label
    /// and a denied one must differ by contract; the check order keeps denial authoritative.
    pub fn access(&self, label: &str) -> LabelAccess<'_> {
        match self.labels.configured.get(label) {
            Some(target) if self.labels.granted.contains(label) => LabelAccess::Granted(target),
            Some(_) => LabelAccess::Denied,
            None => LabelAccess::Unknown,
        }
    }
}

/// Create the data directory (and missing parents) readable by its owner only (0700); an
/// existing one is left as it is.
pub fn create_data_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Refuse a directory or key file anyone on the machine may write (mode `o+w`): whoever can
/// replace its files can replace the data, the key or the code's inputs.
pub fn check_not_world_writable(path: &Path, what: &str) -> crate::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        // Missing: the caller's own open reports it.
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(Error::Store(edgestore::Error::new(
            ErrorCode::PermissionDenied,
            format!(
                "{what} {} is writable by every user (mode {mode:04o}): anyone on this machine \
                 could replace what is in it; refused (chmod o-w {}, e.g. chmod 700 for a \
                 directory, 600 for a file)",
                path.display(),
                path.display()
            ),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_file_rules() {
        assert!(check_label("default").is_ok());
        assert!(check_label("a-1_b").is_ok());
        for bad in ["", "A", "-x", "a/b", "a.b", &"x".repeat(65)] {
            assert!(check_label(bad).is_err(), "{bad}");
        }
        assert!(check_file_name("edgestore.sqlite").is_ok());
        for bad in ["", "../x", "a/b", "/etc/passwd", ".hidden", "a..b", "x\0"] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn access_is_denied_before_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let labels = Labels::default().configure("other", DbTarget::Memory);
        let g = Grants::new(dir.path(), false, labels).unwrap();
        assert!(matches!(g.access("default"), LabelAccess::Granted(_)));
        assert_eq!(g.access("other"), LabelAccess::Denied);
        assert_eq!(g.access("nope"), LabelAccess::Unknown);
        let bad = Labels::new().grant("x", DbTarget::File("../x".into()));
        assert!(matches!(
            Grants::new(dir.path(), false, bad),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn data_directory_failures_are_io_not_config() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        match Grants::new(&missing, true, Labels::default()) {
            Err(Error::Store(e)) => {
                assert_eq!(e.code(), edgestore::ErrorCode::NotFound, "{e}");
                assert!(e.message().contains("open data directory"), "{e}");
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        match Grants::new(&file.join("sub"), false, Labels::default()) {
            Err(Error::Store(e)) => {
                assert!(e.message().contains("create data directory"), "{e}")
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }
}
