//! Where a segment's Brotli encoder runs. By default in this process ([`LocalBrotli`]); the
//! plugin component hands it to its host, which runs the same encoder natively, because Brotli
//! compiled to wasm runs at a fraction of native speed and compression is most of a spool's
//! work.
//!
//! Segment bytes never depend on where the encoder runs: every encoder is a [`LocalStream`]
//! (the `brotli` crate's `CompressorWriter` with the parameters of [`encoder_params`]) fed the
//! very same chunks, in the same order; at qualities 0-1 a chunk boundary ends a meta-block, so
//! the chunks are part of the format.

use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use crate::MaybeSendSync;

/// The size of the encoder's internal buffers (and so of its meta-block steps at qualities
/// 0-1): what every segment has been written with.
pub const ENCODER_BUFFER: usize = 64 << 10;

/// Smallest and largest window (log2 bytes) a segment is compressed with. 24 is the largest
/// every Brotli decoder accepts (RFC 7932, without the large-window extension).
const MIN_WINDOW: u32 = 16;
const MAX_WINDOW: u32 = 24;

/// Window for `size` input bytes, chosen as the `brotli` CLI does: the smallest whose reach
/// covers the whole input, so a segment never loses matches to a too-small window and a small
/// one does not make its readers allocate a large one. `0` (size unknown) gives 22, Brotli's
/// default.
pub fn window_for(size: u64) -> u32 {
    if size == 0 {
        return 22;
    }
    let mut lgwin = MIN_WINDOW;
    // Brotli's reach is the window minus 16 bytes.
    while lgwin < MAX_WINDOW && (1u64 << lgwin) - 16 < size {
        lgwin += 1;
    }
    lgwin
}

/// Encoder parameters for `level` and an expected input of about `size` bytes: the size hint
/// lets Brotli pick the hasher meant for inputs of that size (what the `brotli` CLI does for a
/// file), instead of guessing from the first 64 KiB block.
pub fn encoder_params(level: u32, size: u64) -> brotli::enc::BrotliEncoderParams {
    brotli::enc::BrotliEncoderParams {
        quality: i32::try_from(level).unwrap_or(11).min(11),
        lgwin: i32::try_from(window_for(size)).unwrap_or(22),
        size_hint: usize::try_from(size).unwrap_or(usize::MAX).min(1 << 30),
        ..Default::default()
    }
}

/// One Brotli stream being written.
pub trait BrotliStream: MaybeSendSync {
    /// Compress `data`, appending the compressed bytes ready so far (often none) to `out`.
    fn write(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()>;
    /// End the stream, appending the rest of it to `out`. The stream is spent afterwards.
    fn finish(&mut self, out: &mut Vec<u8>) -> io::Result<()>;
}

/// Starts Brotli streams: in this process, or somewhere faster (the component's host). Shared
/// by a spool's threads; the streams it starts are not (in the component they are the host's
/// handles).
pub trait BrotliEngine: Send + Sync {
    /// A stream at quality `level` (0-11) for about `size_hint` bytes of input (0: unknown).
    fn start(&self, level: u32, size_hint: u64) -> io::Result<Box<dyn BrotliStream>>;
}

/// The in-process encoder.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalBrotli;

impl BrotliEngine for LocalBrotli {
    fn start(&self, level: u32, size_hint: u64) -> io::Result<Box<dyn BrotliStream>> {
        Ok(Box::new(LocalStream::new(level, size_hint)))
    }
}

/// The `brotli` crate's encoder, writing into a buffer its caller drains: the one encoder of
/// every segment, wherever it runs.
pub struct LocalStream {
    /// `None` once finished.
    encoder: Option<brotli::CompressorWriter<Vec<u8>>>,
}

impl LocalStream {
    /// A stream at quality `level` for about `size_hint` input bytes.
    pub fn new(level: u32, size_hint: u64) -> LocalStream {
        LocalStream {
            encoder: Some(brotli::CompressorWriter::with_params(
                Vec::new(),
                ENCODER_BUFFER,
                &encoder_params(level, size_hint),
            )),
        }
    }

    /// [`BrotliStream::write`], returning the output instead of appending it.
    pub fn write_chunk(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        BrotliStream::write(self, data, &mut out)?;
        Ok(out)
    }

    /// [`BrotliStream::finish`], returning the output instead of appending it.
    pub fn finish_stream(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        BrotliStream::finish(self, &mut out)?;
        Ok(out)
    }
}

fn spent() -> io::Error {
    io::Error::other("the Brotli stream is already finished")
}

impl BrotliStream for LocalStream {
    fn write(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let encoder = self.encoder.as_mut().ok_or_else(spent)?;
        // One `write` call per chunk (never split by `write_all` retries: the encoder consumes
        // all of its input in one call), so the stream is the same as in-line encoding's.
        let mut rest = data;
        while !rest.is_empty() {
            let n = encoder.write(rest)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            rest = &rest[n..];
        }
        out.append(encoder.get_mut());
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let encoder = self.encoder.take().ok_or_else(spent)?;
        out.extend_from_slice(&encoder.into_inner());
        Ok(())
    }
}

/// Which [`BrotliEngine`] a spool's segments go through (`SpoolConfig::compressor`). Cheap to
/// clone; equal when it is the same engine.
#[derive(Clone, Default)]
pub struct Compressor(Option<Arc<dyn BrotliEngine>>);

impl Compressor {
    /// Compress in this process (the default).
    pub fn local() -> Compressor {
        Compressor(None)
    }

    /// Compress through `engine`.
    pub fn with_engine(engine: Arc<dyn BrotliEngine>) -> Compressor {
        Compressor(Some(engine))
    }

    /// True for the default, in-process engine.
    pub fn is_local(&self) -> bool {
        self.0.is_none()
    }

    /// Start a stream.
    pub fn start(&self, level: u32, size_hint: u64) -> io::Result<Box<dyn BrotliStream>> {
        match &self.0 {
            Some(engine) => engine.start(level, size_hint),
            None => LocalBrotli.start(level, size_hint),
        }
    }
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_local() {
            "Compressor(local)"
        } else {
            "Compressor(engine)"
        })
    }
}

impl PartialEq for Compressor {
    fn eq(&self, other: &Compressor) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Compressor {}

/// A [`Write`] that compresses everything written to it through a [`BrotliStream`] into `out`.
pub(crate) struct CompressingWriter<W: Write> {
    stream: Box<dyn BrotliStream>,
    out: W,
    scratch: Vec<u8>,
}

impl<W: Write> CompressingWriter<W> {
    pub(crate) fn new(stream: Box<dyn BrotliStream>, out: W) -> Self {
        CompressingWriter {
            stream,
            out,
            scratch: Vec::new(),
        }
    }

    /// End the stream and hand back the writer it went to.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.scratch.clear();
        self.stream.finish(&mut self.scratch)?;
        self.out.write_all(&self.scratch)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for CompressingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.scratch.clear();
        self.stream.write(buf, &mut self.scratch)?;
        self.out.write_all(&self.scratch)?;
        Ok(buf.len())
    }

    /// Writes nothing: flushing a Brotli stream ends a meta-block early (bytes for nothing).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// In-line encoding, as segments were always written: the reference bytes.
    fn inline(level: u32, size: u64, chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut w = brotli::CompressorWriter::with_params(
            Vec::new(),
            ENCODER_BUFFER,
            &encoder_params(level, size),
        );
        for c in chunks {
            w.write_all(c).unwrap();
        }
        w.into_inner()
    }

    struct Remote;
    impl BrotliEngine for Remote {
        fn start(&self, level: u32, size_hint: u64) -> io::Result<Box<dyn BrotliStream>> {
            Ok(Box::new(LocalStream::new(level, size_hint)))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Through a stream, local or an engine's, the bytes are the in-line encoder's.
        #[test]
        fn every_engine_writes_the_inline_bytes(
            level in 0u32..=11,
            chunks in prop::collection::vec(
                prop::collection::vec(prop::sample::select(b"ab{}\",:0123456789xyz".to_vec()), 0..70_000),
                0..5,
            ),
        ) {
            let size: u64 = chunks.iter().map(|c| c.len() as u64).sum();
            let want = inline(level, size, &chunks);
            for compressor in [Compressor::local(), Compressor::with_engine(Arc::new(Remote))] {
                let stream = compressor.start(level, size).unwrap();
                let mut w = CompressingWriter::new(stream, Vec::new());
                for c in &chunks {
                    w.write_all(c).unwrap();
                }
                prop_assert_eq!(&w.finish().unwrap(), &want, "{:?}", compressor);
            }
        }
    }

    #[test]
    fn the_window_covers_the_input_like_the_brotli_cli() {
        assert_eq!(window_for(0), 22);
        assert_eq!(window_for(1), 16);
        assert_eq!(window_for((1 << 16) - 16), 16);
        assert_eq!(window_for((1 << 16) - 15), 17);
        assert_eq!(window_for(4_400_000), 23);
        assert_eq!(window_for(u64::MAX), 24);
    }

    #[test]
    fn a_finished_stream_refuses_more() {
        let mut s = LocalStream::new(6, 0);
        s.write_chunk(b"[1]").unwrap();
        assert!(!s.finish_stream().unwrap().is_empty());
        assert!(s.write_chunk(b"x").is_err());
        assert!(s.finish_stream().is_err());
    }

    #[test]
    fn engines_compare_by_identity() {
        let e: Arc<dyn BrotliEngine> = Arc::new(Remote);
        assert_eq!(Compressor::local(), Compressor::default());
        assert_eq!(
            Compressor::with_engine(e.clone()),
            Compressor::with_engine(e)
        );
        assert_ne!(
            Compressor::local(),
            Compressor::with_engine(Arc::new(Remote))
        );
    }
}
