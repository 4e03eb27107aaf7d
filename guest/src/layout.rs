//! The data directory's layout: the names and rules every tool that opens one shares, so a
//! directory written by the `edgestore` CLI, the host's client, the plugin component or the
//! standalone component is the same directory to all of them.
//!
//! | rule | here | used by |
//! |---|---|---|
//! | where hosts mount the data directory inside a component | [`DATA_MOUNT`] | component glue, host preopen |
//! | database labels: `[a-z0-9][a-z0-9_-]*`, at most [`MAX_LABEL_LEN`] bytes | [`check_label`] | host grants, standalone |
//! | database file names: one plain file name inside the data directory | [`check_database_file`] | host grants |
//! | the file behind a label when nothing configures it | [`label_file`] | standalone (the host's default grant is the same for [`DEFAULT_LABEL`]) |
//! | spool paths: a relative directory strictly inside the data directory | [`check_spool_path`] | native engine, component glue |
//! | the defaults: `edgestore.sqlite`, spool `metrics`, identifier `agent` | constants | host config and CLI, standalone command |

use crate::dir::check_name;
use crate::error::{Error, Result};

/// Where hosts mount (preopen) the data directory inside a component.
pub const DATA_MOUNT: &str = "/data";
/// The label the typed repository uses.
pub const DEFAULT_LABEL: &str = "default";
/// The file behind [`DEFAULT_LABEL`] unless configured otherwise.
pub const DEFAULT_DATABASE_FILE: &str = "edgestore.sqlite";
/// The spool directory inside the data directory unless configured otherwise (the `edgestore`
/// CLI's config `storage.path`).
pub const DEFAULT_SPOOL_PATH: &str = "metrics";
/// The first component of segment names unless configured otherwise.
pub const DEFAULT_IDENTIFIER: &str = "agent";
/// Longest label accepted.
pub const MAX_LABEL_LEN: usize = 64;
/// Longest database file name accepted.
pub const MAX_FILE_NAME_LEN: usize = 128;

/// Check a label: `[a-z0-9][a-z0-9_-]*`, at most [`MAX_LABEL_LEN`] bytes, so it can never
/// name a path. `invalid-input` otherwise.
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
        Err(Error::invalid_input(format!(
            "label {label:?} must be 1-{MAX_LABEL_LEN} of a-z, 0-9, '_', '-', starting with a letter or digit"
        )))
    }
}

/// Check a database file name: one plain path component inside the data directory (letters,
/// digits, `_`, `-`, `.`; not hidden, no `..`), at most [`MAX_FILE_NAME_LEN`] bytes.
/// `invalid-input` otherwise.
pub fn check_database_file(name: &str) -> Result<()> {
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
        Err(Error::invalid_input(format!(
            "database file {name:?} must be one plain file name (a-z, A-Z, 0-9, '_', '-', '.'; not hidden, no '..')"
        )))
    }
}

/// The database file behind `label` when no configuration maps it: [`DEFAULT_LABEL`] is
/// [`DEFAULT_DATABASE_FILE`] (the host's default grant), any other label `LABEL.sqlite`.
/// The label is checked first ([`check_label`]).
pub fn label_file(label: &str) -> Result<String> {
    check_label(label)?;
    let file = if label == DEFAULT_LABEL {
        DEFAULT_DATABASE_FILE.to_owned()
    } else {
        format!("{label}.sqlite")
    };
    check_database_file(&file)?;
    Ok(file)
}

/// Check a spool path: a relative, `/`-separated directory strictly inside the data
/// directory: not empty (the data directory itself holds the database and the lock file, not
/// segments), no leading `/`, no empty, `.` or `..` components, no backslash or NUL.
/// `invalid-input` otherwise. Symlinks on the way are the opener's to refuse (cap-std
/// natively, the preopen inside a component).
pub fn check_spool_path(path: &str) -> Result<()> {
    check_name(path).map_err(|_| {
        Error::invalid_input(format!(
            "spool path {path:?} must be a directory relative to the data directory, inside it \
             (not empty, no '.', '..' or empty components)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn labels() {
        for ok in ["default", "a-1_b", "9", &"x".repeat(64)] {
            assert!(check_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "-x", "_x", "a/b", "a.b", "..", &"x".repeat(65)] {
            let e = check_label(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn database_files() {
        for ok in ["edgestore.sqlite", "A_b-1.db"] {
            assert!(check_database_file(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a/b",
            "/etc/passwd",
            ".hidden",
            "a..b",
            "x\0",
            "a\\b",
        ] {
            assert!(check_database_file(bad).is_err(), "{bad}");
        }
        assert!(check_database_file(&"x".repeat(129)).is_err());
    }

    #[test]
    fn label_files() {
        assert_eq!(label_file("default").unwrap(), "edgestore.sqlite");
        assert_eq!(label_file("other").unwrap(), "other.sqlite");
        assert_eq!(label_file(&"x".repeat(64)).unwrap().len(), 71);
        for bad in ["", "../x", "Default", "a.b"] {
            assert!(label_file(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spool_paths() {
        for ok in [DEFAULT_SPOOL_PATH, "spool/m", ".hidden", "a b"] {
            assert!(check_spool_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "/etc",
            "../x",
            "a/../../x",
            "a//b",
            "a/",
            "a\\b",
            "x\0",
        ] {
            let e = check_spool_path(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput, "{bad}");
        }
    }
}
