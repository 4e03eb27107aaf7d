//! The one error type of the core.
//!
//! Every failure carries a [`ErrorCode`] (what went wrong) and an [`ErrorClass`] (what a caller
//! may do about it). The code survives every boundary (SQLite, the directory seam, and later the
//! WIT interface) so callers never have to parse messages. Only [`ErrorClass::Transient`] errors
//! are worth retrying.

use std::fmt;
use std::io;

/// What went wrong, coarsely enough to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The row, segment or object asked for does not exist.
    NotFound,
    /// A unique or primary-key constraint refused the write.
    DuplicateKey,
    /// A foreign-key constraint refused the write.
    ForeignKey,
    /// Another constraint (NOT NULL, CHECK) refused the write.
    Constraint,
    /// The table the operation needs does not exist.
    TableMissing,
    /// The database is locked by someone else; retrying later may succeed.
    Busy,
    /// The disk (or the database's size limit) is full.
    DiskFull,
    /// The platform refused access (read-only grant, file permissions).
    PermissionDenied,
    /// The caller passed something malformed: a bad name, value, key or configuration.
    InvalidInput,
    /// Stored data failed verification or decoding.
    Corrupt,
    /// The store, transaction or reader was already closed.
    Closed,
    /// Any other I/O failure.
    Io,
    /// A bug or an unexpected state inside edgestore.
    Internal,
    /// No database is configured under the label asked for (the host's `sqlite` import).
    NoSuchDatabase,
    /// The label exists but is not granted to this instance (the host's `sqlite` import).
    AccessDenied,
    /// Encrypted data and no configured key opens it (none, or not the right one). Never
    /// reported as `Corrupt`: the data is intact, the setup must change.
    KeyMissing,
    /// A call ran past its time bound and was stopped (the host's deadline on a component
    /// call). A `resource` error: work the call finished is kept, so trying again (or with a
    /// smaller call) goes on from there. Never crosses the WIT: only the host raises it.
    TimeLimit,
}

impl ErrorCode {
    /// The class this code falls in by default.
    pub fn class(self) -> ErrorClass {
        match self {
            ErrorCode::Busy => ErrorClass::Transient,
            ErrorCode::DiskFull | ErrorCode::TimeLimit => ErrorClass::Resource,
            ErrorCode::DuplicateKey
            | ErrorCode::ForeignKey
            | ErrorCode::Constraint
            | ErrorCode::Corrupt => ErrorClass::Consistency,
            ErrorCode::NotFound
            | ErrorCode::TableMissing
            | ErrorCode::PermissionDenied
            | ErrorCode::InvalidInput
            | ErrorCode::Closed
            | ErrorCode::Io
            | ErrorCode::Internal
            | ErrorCode::NoSuchDatabase
            | ErrorCode::AccessDenied
            | ErrorCode::KeyMissing => ErrorClass::Permanent,
        }
    }

    /// The stable kebab-case name used in logs, metrics and the WIT interface.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not-found",
            ErrorCode::DuplicateKey => "duplicate-key",
            ErrorCode::ForeignKey => "foreign-key",
            ErrorCode::Constraint => "constraint",
            ErrorCode::TableMissing => "table-missing",
            ErrorCode::Busy => "busy",
            ErrorCode::DiskFull => "disk-full",
            ErrorCode::PermissionDenied => "permission-denied",
            ErrorCode::InvalidInput => "invalid-input",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::Closed => "closed",
            ErrorCode::Io => "io",
            ErrorCode::Internal => "internal",
            ErrorCode::NoSuchDatabase => "no-such-database",
            ErrorCode::AccessDenied => "access-denied",
            ErrorCode::KeyMissing => "key-missing",
            ErrorCode::TimeLimit => "time-limit",
        }
    }
}

impl ErrorCode {
    /// Every code, for parsing and tests.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::NotFound,
        ErrorCode::DuplicateKey,
        ErrorCode::ForeignKey,
        ErrorCode::Constraint,
        ErrorCode::TableMissing,
        ErrorCode::Busy,
        ErrorCode::DiskFull,
        ErrorCode::PermissionDenied,
        ErrorCode::InvalidInput,
        ErrorCode::Corrupt,
        ErrorCode::Closed,
        ErrorCode::Io,
        ErrorCode::Internal,
        ErrorCode::NoSuchDatabase,
        ErrorCode::AccessDenied,
        ErrorCode::KeyMissing,
        ErrorCode::TimeLimit,
    ];

    /// The code named by [`ErrorCode::as_str`] (errors that crossed a process boundary).
    pub fn parse(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a caller may do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Retrying the same operation later may succeed (busy, locked).
    Transient,
    /// Retrying will fail the same way until the input or the setup changes.
    Permanent,
    /// A resource ran out (disk full); freeing it lets the operation succeed.
    Resource,
    /// The data contradicts a rule (constraint, corruption).
    Consistency,
}

impl ErrorClass {
    /// The stable kebab-case name used in logs, metrics and the WIT interface.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Resource => "resource",
            ErrorClass::Consistency => "consistency",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The core's error: a code, a human message, and the underlying cause when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    code: ErrorCode,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Shorthand for results in the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// What a caller may do about it.
    pub fn class(&self) -> ErrorClass {
        self.code.class()
    }

    /// The message without the code prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when retrying may succeed.
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// Shorthand for [`ErrorCode::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidInput, message)
    }

    /// Shorthand for [`ErrorCode::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::NotFound, message)
    }

    /// Shorthand for [`ErrorCode::Corrupt`].
    pub fn corrupt(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Corrupt, message)
    }

    /// Shorthand for [`ErrorCode::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Internal, message)
    }

    /// Translate an I/O error, naming what was being done (`"fsync segment x"`).
    pub fn io(context: impl Into<String>, err: io::Error) -> Self {
        Error::new(io_code(&err), format!("{}: {err}", context.into())).with_source(err)
    }

    /// An I/O failure on a file the store itself owns (a journal it is finishing, a segment it
    /// is writing). A missing file or directory there means the storage changed under the
    /// store, an `io` fault, not that the caller asked for something absent (`not-found`).
    pub fn own_file_io(context: impl Into<String>, err: io::Error) -> Self {
        let code = match io_code(&err) {
            ErrorCode::NotFound => ErrorCode::Io,
            code => code,
        };
        Error::new(code, format!("{}: {err}", context.into())).with_source(err)
    }
}

/// Classify an I/O error. Disk-full has no stable `ErrorKind` on older toolchains everywhere, so
/// the raw OS codes (ENOSPC, EDQUOT) are checked too.
fn io_code(err: &io::Error) -> ErrorCode {
    match err.kind() {
        io::ErrorKind::NotFound => ErrorCode::NotFound,
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            ErrorCode::PermissionDenied
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => ErrorCode::DiskFull,
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidFilename => ErrorCode::InvalidInput,
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => ErrorCode::Corrupt,
        io::ErrorKind::WouldBlock | io::ErrorKind::ResourceBusy => ErrorCode::Busy,
        _ => match err.raw_os_error() {
            Some(28) | Some(122) => ErrorCode::DiskFull,
            _ => ErrorCode::Io,
        },
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::io("i/o", err)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        let code = match err.classify() {
            serde_json::error::Category::Io => ErrorCode::Io,
            serde_json::error::Category::Eof | serde_json::error::Category::Syntax => {
                ErrorCode::InvalidInput
            }
            serde_json::error::Category::Data => ErrorCode::InvalidInput,
        };
        Error::new(code, format!("json: {err}")).with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_codes() {
        assert_eq!(ErrorCode::Busy.class(), ErrorClass::Transient);
        assert_eq!(ErrorCode::DiskFull.class(), ErrorClass::Resource);
        assert_eq!(ErrorCode::DuplicateKey.class(), ErrorClass::Consistency);
        assert_eq!(ErrorCode::NotFound.class(), ErrorClass::Permanent);
        assert_eq!(ErrorCode::NoSuchDatabase.class(), ErrorClass::Permanent);
        assert_eq!(ErrorCode::AccessDenied.class(), ErrorClass::Permanent);
        assert_eq!(ErrorCode::AccessDenied.as_str(), "access-denied");
    }

    #[test]
    fn codes_parse_back_from_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn io_errors_are_classified() {
        let full = Error::io("write", io::Error::from_raw_os_error(28));
        assert_eq!(full.code(), ErrorCode::DiskFull);
        assert_eq!(full.class(), ErrorClass::Resource);
        let denied = Error::io("open", io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(denied.code(), ErrorCode::PermissionDenied);
        assert!(denied.to_string().starts_with("permission-denied: open"));
    }
}
