//! [`Bail`]: the error of the direct serde paths (rows to and from models, rows to journal
//! lines), which each have a reference path (serde_json) that decides every case they do not
//! answer themselves. It is never shown to a caller: it only says "take the reference path".

use std::fmt;

/// "Take the reference path": every failure of a direct serde path.
#[derive(Debug)]
pub(crate) struct Bail;

impl fmt::Display for Bail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to the reference path")
    }
}

impl std::error::Error for Bail {}

impl serde::ser::Error for Bail {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Bail
    }
}

impl serde::de::Error for Bail {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Bail
    }
}
