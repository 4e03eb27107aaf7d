//! Translation of every rusqlite error into the core's [`Error`], by SQLite's (extended) code.

use rusqlite::ffi;
use rusqlite::ErrorCode as Sc;

use crate::error::{Error, ErrorCode};

/// The code of a SQLite failure. Extended codes decide constraints; messages decide only where
/// SQLite has no code (a missing table is a plain `SQLITE_ERROR`).
pub fn classify(err: &ffi::Error, message: Option<&str>) -> ErrorCode {
    match err.extended_code {
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        | ffi::SQLITE_CONSTRAINT_UNIQUE
        | ffi::SQLITE_CONSTRAINT_ROWID => return ErrorCode::DuplicateKey,
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return ErrorCode::ForeignKey,
        ffi::SQLITE_IOERR_NOMEM => return ErrorCode::Internal,
        _ => {}
    }
    match err.code {
        // ON DELETE RESTRICT reports a plain SQLITE_CONSTRAINT; only the message tells.
        Sc::ConstraintViolation if message.is_some_and(|m| m.contains("FOREIGN KEY")) => {
            ErrorCode::ForeignKey
        }
        Sc::ConstraintViolation => ErrorCode::Constraint,
        Sc::DatabaseBusy | Sc::DatabaseLocked => ErrorCode::Busy,
        Sc::DiskFull => ErrorCode::DiskFull,
        Sc::ReadOnly | Sc::PermissionDenied | Sc::AuthorizationForStatementDenied => {
            ErrorCode::PermissionDenied
        }
        Sc::DatabaseCorrupt | Sc::NotADatabase => ErrorCode::Corrupt,
        Sc::TooBig | Sc::TypeMismatch | Sc::ParameterOutOfRange => ErrorCode::InvalidInput,
        Sc::CannotOpen
        | Sc::SystemIoFailure
        | Sc::NoLargeFileSupport
        | Sc::FileLockingProtocolFailed => ErrorCode::Io,
        // The schema changed under a prepared statement: trying again re-prepares it.
        Sc::SchemaChanged => ErrorCode::Busy,
        Sc::OperationInterrupted | Sc::OperationAborted => ErrorCode::Io,
        Sc::NotFound => ErrorCode::NotFound,
        _ => match message {
            Some(m) if m.starts_with("no such table") => ErrorCode::TableMissing,
            Some(m) if m.contains("no such column") || m.contains("has no column named") => {
                ErrorCode::InvalidInput
            }
            _ => ErrorCode::Internal,
        },
    }
}

/// Translate a rusqlite error, keeping it as the source.
pub fn translate(err: rusqlite::Error) -> Error {
    let code = match &err {
        rusqlite::Error::SqliteFailure(e, msg) => classify(e, msg.as_deref()),
        rusqlite::Error::QueryReturnedNoRows => ErrorCode::NotFound,
        rusqlite::Error::InvalidParameterCount(..)
        | rusqlite::Error::InvalidParameterName(_)
        | rusqlite::Error::NulError(_)
        | rusqlite::Error::InvalidPath(_)
        | rusqlite::Error::ToSqlConversionFailure(_)
        | rusqlite::Error::MultipleStatement => ErrorCode::InvalidInput,
        rusqlite::Error::Utf8Error(_) | rusqlite::Error::FromSqlConversionFailure(..) => {
            ErrorCode::Corrupt
        }
        _ => ErrorCode::Internal,
    };
    Error::new(code, format!("sqlite: {err}")).with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(raw: i32) -> ErrorCode {
        translate(rusqlite::Error::SqliteFailure(ffi::Error::new(raw), None)).code()
    }

    #[test]
    fn maps_codes() {
        assert_eq!(
            code_of(ffi::SQLITE_CONSTRAINT_UNIQUE),
            ErrorCode::DuplicateKey
        );
        assert_eq!(
            code_of(ffi::SQLITE_CONSTRAINT_PRIMARYKEY),
            ErrorCode::DuplicateKey
        );
        assert_eq!(
            code_of(ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
            ErrorCode::ForeignKey
        );
        assert_eq!(
            code_of(ffi::SQLITE_CONSTRAINT_NOTNULL),
            ErrorCode::Constraint
        );
        assert_eq!(code_of(ffi::SQLITE_CONSTRAINT_CHECK), ErrorCode::Constraint);
        assert_eq!(code_of(ffi::SQLITE_BUSY), ErrorCode::Busy);
        assert_eq!(code_of(ffi::SQLITE_BUSY_SNAPSHOT), ErrorCode::Busy);
        assert_eq!(code_of(ffi::SQLITE_LOCKED), ErrorCode::Busy);
        assert_eq!(code_of(ffi::SQLITE_FULL), ErrorCode::DiskFull);
        assert_eq!(code_of(ffi::SQLITE_READONLY), ErrorCode::PermissionDenied);
        // What a WAL reader opened read-only can meet when the owner is away.
        assert_eq!(
            code_of(ffi::SQLITE_READONLY_RECOVERY),
            ErrorCode::PermissionDenied
        );
        assert_eq!(
            code_of(ffi::SQLITE_READONLY_CANTINIT),
            ErrorCode::PermissionDenied
        );
        assert_eq!(
            code_of(ffi::SQLITE_READONLY_DBMOVED),
            ErrorCode::PermissionDenied
        );
        assert_eq!(code_of(ffi::SQLITE_PERM), ErrorCode::PermissionDenied);
        assert_eq!(code_of(ffi::SQLITE_CORRUPT), ErrorCode::Corrupt);
        assert_eq!(code_of(ffi::SQLITE_NOTADB), ErrorCode::Corrupt);
        assert_eq!(code_of(ffi::SQLITE_IOERR), ErrorCode::Io);
        assert_eq!(code_of(ffi::SQLITE_CANTOPEN), ErrorCode::Io);
        assert!(translate(rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_BUSY),
            None
        ))
        .is_transient());
        let missing = rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some("no such table: x".into()),
        );
        assert_eq!(translate(missing).code(), ErrorCode::TableMissing);
        assert_eq!(
            translate(rusqlite::Error::QueryReturnedNoRows).code(),
            ErrorCode::NotFound
        );
    }

    #[test]
    fn maps_real_failures() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "PRAGMA foreign_keys=ON; CREATE TABLE p(id INTEGER PRIMARY KEY);
             CREATE TABLE c(id INTEGER NOT NULL UNIQUE, p INTEGER REFERENCES p(id));",
        )
        .unwrap();
        let run = |sql: &str| translate(c.execute(sql, []).unwrap_err()).code();
        c.execute("INSERT INTO c VALUES (1, NULL)", []).unwrap();
        assert_eq!(
            run("INSERT INTO c VALUES (1, NULL)"),
            ErrorCode::DuplicateKey
        );
        assert_eq!(
            run("INSERT INTO c VALUES (NULL, NULL)"),
            ErrorCode::Constraint
        );
        assert_eq!(run("INSERT INTO c VALUES (2, 9)"), ErrorCode::ForeignKey);
        assert_eq!(run("INSERT INTO nope VALUES (1)"), ErrorCode::TableMissing);
        c.execute_batch("INSERT INTO p VALUES (1); INSERT INTO c VALUES (3, 1);")
            .unwrap();
        assert_eq!(run("DELETE FROM p"), ErrorCode::ForeignKey);
    }
}
