//! Files the spool writes inside a WASI component, through WASI's file system interface
//! directly (`wasi:filesystem/types`): each write is a positional `descriptor.write`, which a
//! host that allows blocking (the edgestore host does) runs on the calling thread. `std::fs`
//! writes go through an output stream instead, which Wasmtime hands to a thread pool 64 KiB
//! at a time: a thread wake-up and a poll per 64 KiB of journal.
//!
//! Only creating and writing is done here; every other directory operation stays on `std::fs`
//! ([`super::PathDir`]), which opens the same preopened directories.

use std::io::{self, Write};
use std::path::{Component, Path};

use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

use super::WriteFile;

/// A new file opened for writing, written at its own running offset.
pub(super) struct WasiFile {
    file: Descriptor,
    offset: u64,
    /// For error messages.
    path: String,
}

/// Create the file at the absolute `path` (which must not exist), under the preopened
/// directory that holds it: `AlreadyExists` if it exists, `NotFound` if no preopen holds it.
pub(super) fn create_new(path: &Path) -> io::Result<WasiFile> {
    let (dir, relative) = preopen_of(path)?;
    let file = dir
        .open_at(
            PathFlags::empty(),
            &relative,
            OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
            DescriptorFlags::WRITE,
        )
        .map_err(|code| error(code, "create", path.display()))?;
    Ok(WasiFile {
        file,
        offset: 0,
        path: path.display().to_string(),
    })
}

/// The preopened directory holding `path` (the longest that does), and `path` relative to it
/// (normal components only: WASI resolves it inside that directory).
fn preopen_of(path: &Path) -> io::Result<(Descriptor, String)> {
    let mut best: Option<(Descriptor, usize, String)> = None;
    for (dir, root) in get_directories() {
        let Ok(rest) = path.strip_prefix(&root) else {
            continue;
        };
        let depth = Path::new(&root).components().count();
        if best.as_ref().is_some_and(|(_, d, _)| *d >= depth) {
            continue;
        }
        let mut relative = Vec::new();
        for part in rest.components() {
            match part {
                Component::Normal(p) => relative.push(p.to_str().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "file name is not UTF-8")
                })?),
                Component::CurDir => {}
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} leaves its directory", path.display()),
                    ))
                }
            }
        }
        best = Some((dir, depth, relative.join("/")));
    }
    match best {
        Some((dir, _, relative)) if !relative.is_empty() => Ok((dir, relative)),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no preopened directory holds {}", path.display()),
        )),
    }
}

/// A WASI file system error as an `io::Error` of the matching kind (what the spool classifies
/// by: `StorageFull` is disk-full), naming the operation and file.
fn error(code: ErrorCode, op: &str, path: impl std::fmt::Display) -> io::Error {
    use io::ErrorKind as K;
    let kind = match code {
        ErrorCode::Access | ErrorCode::NotPermitted => K::PermissionDenied,
        ErrorCode::Exist => K::AlreadyExists,
        ErrorCode::NoEntry => K::NotFound,
        ErrorCode::InsufficientSpace => K::StorageFull,
        ErrorCode::Quota => K::QuotaExceeded,
        ErrorCode::ReadOnly => K::ReadOnlyFilesystem,
        ErrorCode::IsDirectory => K::IsADirectory,
        ErrorCode::NotDirectory => K::NotADirectory,
        ErrorCode::Invalid => K::InvalidInput,
        ErrorCode::Unsupported => K::Unsupported,
        ErrorCode::FileTooLarge => K::FileTooLarge,
        ErrorCode::Interrupted => K::Interrupted,
        ErrorCode::WouldBlock => K::WouldBlock,
        ErrorCode::InsufficientMemory => K::OutOfMemory,
        _ => K::Other,
    };
    io::Error::new(
        kind,
        format!("{op} {path}: {} ({})", code.message(), code.name()),
    )
}

impl WasiFile {
    fn failed(&self, code: ErrorCode, op: &str) -> io::Error {
        error(code, op, &self.path)
    }
}

impl Write for WasiFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self
            .file
            .write(buf, self.offset)
            .map_err(|code| self.failed(code, "write"))?;
        // The host never reports more than it was given; clamp all the same.
        let n = usize::try_from(n).unwrap_or(buf.len()).min(buf.len());
        self.offset += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WriteFile for WasiFile {
    fn sync_data(&mut self) -> io::Result<()> {
        self.file
            .sync_data()
            .map_err(|code| self.failed(code, "sync"))
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.file.sync().map_err(|code| self.failed(code, "sync"))
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file
            .set_size(len)
            .map_err(|code| self.failed(code, "truncate"))?;
        // The next write continues at the new end, as an appending file would.
        self.offset = len;
        Ok(())
    }
}
