//! Where a segment's Brotli encoder runs. By default in this process ([`LocalBrotli`]); the
//! plugin component hands it to its host, which runs the same encoder natively, because Brotli
//! compiled to wasm runs at a fraction of native speed and compression is most of a spool's
//! work.
//!
//! Segment bytes never depend on where the encoder runs: every segment is written by one
//! encoder, Google's C encoder (`c_brotli`: natively, in the component's host for the plugin
//! world, and compiled into the standalone component), with the parameters of
//! [`encoder_params`], fed the very same chunks in the same order; at qualities 0-1 a chunk
//! boundary ends a meta-block, so the chunks are part of the format. A build without C (feature
//! `c-brotli` off: the plugin component, whose segments its host compresses) falls back to the
//! `brotli` crate, a port of an older version of the same encoder: valid Brotli, twice as slow
//! at quality 1, and not always the same bytes.

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

/// The in-process encoder, writing into a buffer its caller drains: the one encoder of every
/// segment, wherever it runs. Google's C encoder where it is built (feature `c-brotli`: part of
/// `native` and `standalone`), else the `brotli` crate.
pub struct LocalStream {
    encoder: Encoder,
}

enum Encoder {
    #[cfg(feature = "c-brotli")]
    C(super::c_brotli::CEncoder),
    Rust(Box<brotli::CompressorWriter<Vec<u8>>>),
    Finished,
}

impl LocalStream {
    /// A stream at quality `level` for about `size_hint` input bytes.
    pub fn new(level: u32, size_hint: u64) -> LocalStream {
        #[cfg(feature = "c-brotli")]
        if let Some(c) = {
            let p = encoder_params(level, size_hint);
            super::c_brotli::CEncoder::new(p.quality, p.lgwin, p.size_hint)
        } {
            return LocalStream {
                encoder: Encoder::C(c),
            };
        }
        LocalStream::rust(level, size_hint)
    }

    /// A stream on the `brotli` crate's encoder.
    fn rust(level: u32, size_hint: u64) -> LocalStream {
        LocalStream {
            encoder: Encoder::Rust(Box::new(brotli::CompressorWriter::with_params(
                Vec::new(),
                ENCODER_BUFFER,
                &encoder_params(level, size_hint),
            ))),
        }
    }

    /// Which encoder this stream runs: `"c"` or `"rust"`.
    #[cfg(test)]
    fn encoder_name(&self) -> &'static str {
        match self.encoder {
            #[cfg(feature = "c-brotli")]
            Encoder::C(_) => "c",
            _ => "rust",
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
        match &mut self.encoder {
            #[cfg(feature = "c-brotli")]
            Encoder::C(c) => c.write(data, out),
            Encoder::Rust(encoder) => {
                // One `write` call per chunk (never split by `write_all` retries: the encoder
                // consumes all of its input in one call), so the stream is the same as in-line
                // encoding's.
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
            Encoder::Finished => Err(spent()),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        match std::mem::replace(&mut self.encoder, Encoder::Finished) {
            #[cfg(feature = "c-brotli")]
            Encoder::C(mut c) => c.finish(out),
            Encoder::Rust(encoder) => {
                out.extend_from_slice(&encoder.into_inner());
                Ok(())
            }
            Encoder::Finished => Err(spent()),
        }
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

    /// The encoder fed the chunks directly, one call each: the reference bytes.
    fn inline(level: u32, size: u64, chunks: &[Vec<u8>]) -> Vec<u8> {
        let chunks: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
        through(LocalStream::new(level, size), &chunks)
    }

    /// What the spool's reader decodes a segment's bytes to.
    fn decoded(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &bytes[..], &mut out).unwrap();
        out
    }

    struct Remote;
    impl BrotliEngine for Remote {
        fn start(&self, level: u32, size_hint: u64) -> io::Result<Box<dyn BrotliStream>> {
            Ok(Box::new(LocalStream::new(level, size_hint)))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Through a stream, local or an engine's, the bytes are the in-line encoder's, and the
        /// reader's decoder gets the input back.
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
            prop_assert!(decoded(&want) == chunks.concat());
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

    /// Generated metrics as a segment's JSON array, about `bytes` long.
    fn metric_json(bytes: usize) -> Vec<u8> {
        let mut g = crate::sample::MetricGenerator::new(7, 1_700_000_000_000);
        let mut json = b"[".to_vec();
        while json.len() < bytes {
            for m in g.batch(100) {
                if json.len() > 1 {
                    json.push(b',');
                }
                serde_json::to_writer(&mut json, &m).unwrap();
            }
        }
        json.push(b']');
        json
    }

    /// A stream fed the chunks, one write each, then finished: everything it wrote.
    fn through(mut stream: LocalStream, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            BrotliStream::write(&mut stream, c, &mut out).unwrap();
        }
        BrotliStream::finish(&mut stream, &mut out).unwrap();
        out
    }

    /// Natively the encoder is C, and at every quality, in the segment writer's 128 KiB
    /// chunks and in odd ones, with an exact, an unknown and a wrong size hint, what it writes
    /// decodes to the input with the reader's decoder (the `brotli` crate's), as does what the
    /// pure-Rust encoder (the wasm builds' fallback) writes.
    #[test]
    fn every_quality_round_trips_through_the_readers_decoder() {
        #[cfg(feature = "c-brotli")]
        assert_eq!(LocalStream::new(1, 0).encoder_name(), "c");
        assert_eq!(LocalStream::rust(1, 0).encoder_name(), "rust");
        let big = metric_json(700_000);
        let small = metric_json(150_000);
        for level in 0..=11u32 {
            let json = if level >= 10 { &small } else { &big };
            let size = json.len() as u64;
            let writer: Vec<&[u8]> = json.chunks(128 << 10).collect();
            let odd: Vec<&[u8]> = json
                .chunks(70_001)
                .flat_map(|c| {
                    let (a, b) = c.split_at(c.len().min(17));
                    [a, b]
                })
                .collect();
            for (hint, chunks) in [(size, &writer), (0, &writer), (size / 3, &odd)] {
                let c = through(LocalStream::new(level, hint), chunks);
                assert!(decoded(&c) == *json, "quality {level}, hint {hint}");
                if level <= 6 {
                    let rust = through(LocalStream::rust(level, hint), chunks);
                    assert!(
                        decoded(&rust) == *json,
                        "quality {level}, hint {hint}: rust"
                    );
                }
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
