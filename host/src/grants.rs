//! What an instance may touch: one data directory (opened by the host through cap-std, granted
//! read-write or read-only) and a set of SQLite labels, each backed by a database file inside
//! that directory or by a private in-memory database.
//!
//! The rule that maps labels to files is the embedder's, never the guest's: a label names a
//! [`DbTarget`] chosen at configuration time, and a file target is a single plain file name
//! (letters, digits, `-`, `_`, `.`; no separators, no `..`, not hidden) resolved inside the
//! data directory. The guest only ever passes a label. Everything is validated when the store
//! opens: every granted label is configured, every name is safe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::error::{Error, Result};

/// Longest label accepted.
pub const MAX_LABEL_LEN: usize = 64;
/// Longest database file name accepted.
pub const MAX_FILE_NAME_LEN: usize = 128;
/// The label the typed client's repository uses.
pub const DEFAULT_LABEL: &str = "default";
/// The file that backs [`DEFAULT_LABEL`] unless configured otherwise.
pub const DEFAULT_DATABASE_FILE: &str = "edgestore.sqlite";

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
}

/// Check a label: `[a-z0-9][a-z0-9_-]*`, at most [`MAX_LABEL_LEN`] bytes.
pub fn check_label(label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "label {label:?} must be 1-{MAX_LABEL_LEN} of a-z, 0-9, '_', '-', starting with a letter or digit"
        )))
    }
}

/// Check a database file name: one plain path component inside the data directory.
pub fn check_file_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_FILE_NAME_LEN
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "database file {name:?} must be one plain file name (a-z, A-Z, 0-9, '_', '-', '.'; not hidden, no '..')"
        )))
    }
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
        if !read_only {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                Error::Config(format!("create data directory {}: {e}", data_dir.display()))
            })?;
        }
        let dir = Dir::open_ambient_dir(data_dir, ambient_authority()).map_err(|e| {
            Error::Config(format!("open data directory {}: {e}", data_dir.display()))
        })?;
        let data_dir = data_dir.canonicalize().map_err(|e| {
            Error::Config(format!(
                "resolve data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        Ok(Grants {
            data_dir,
            dir,
            read_only,
            labels,
        })
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
        assert!(Grants::new(dir.path(), false, bad).is_err());
    }
}
