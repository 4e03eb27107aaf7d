//! Google's C Brotli encoder (the reference implementation, through the `brotlic` binding):
//! what every segment is compressed with where C is built (natively, by the component's host
//! for the plugin world, and inside the standalone component, compiled for WASI). On metric
//! JSON it is about twice as fast as the `brotli` crate at quality 1 and 1.4 times at quality
//! 6. The crate is a port of an older version of this encoder: its output is valid Brotli but
//! differs at some qualities and inputs, so every writer of segments uses this one and segment
//! bytes do not depend on the engine (`tests/host_compat.rs`).

use std::io;

use brotlic::encode::BrotliOperation;
use brotlic::{BrotliEncoder, BrotliEncoderOptions, Quality, WindowSize};

/// Output room each encoder call gets (what it cannot place waits in the encoder).
const OUT_STEP: usize = 64 << 10;

/// One C encoder stream.
pub(crate) struct CEncoder {
    encoder: BrotliEncoder,
}

impl CEncoder {
    /// A stream with the parameters of `compress::encoder_params` (quality, window bits, size
    /// hint); `None` if the library refuses them (it accepts every value the spool uses).
    pub(crate) fn new(quality: i32, lgwin: i32, size_hint: usize) -> Option<CEncoder> {
        let quality = Quality::new(u8::try_from(quality).ok()?).ok()?;
        let window = WindowSize::new(u8::try_from(lgwin).ok()?).ok()?;
        let encoder = BrotliEncoderOptions::new()
            .quality(quality)
            .window_size(window)
            .size_hint(u32::try_from(size_hint).ok()?)
            .build()
            .ok()?;
        Some(CEncoder { encoder })
    }

    /// Compress `data`, appending what the encoder has ready to `out`.
    pub(crate) fn write(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.run(data, BrotliOperation::Process, out)
    }

    /// End the stream, appending the rest of it to `out`.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.run(&[], BrotliOperation::Finish, out)
    }

    /// Call the encoder until `input` is consumed (`PROCESS`, as the `brotli` crate's writer
    /// does: never an extra call once it is) or the stream is finished (`FINISH`), its output
    /// going straight into `out`.
    fn run(&mut self, mut input: &[u8], op: BrotliOperation, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let done = match op {
                BrotliOperation::Finish => self.encoder.is_finished(),
                _ => input.is_empty(),
            };
            if done {
                return Ok(());
            }
            let start = out.len();
            out.resize(start + OUT_STEP, 0);
            let result = self.encoder.compress(input, &mut out[start..], op);
            let Ok(r) = result else {
                out.truncate(start);
                return Err(io::Error::other("the Brotli encoder failed"));
            };
            let (read, written) = (r.bytes_read, r.bytes_written);
            out.truncate(start + written);
            if read == 0 && written == 0 {
                return Err(io::Error::other(
                    "the Brotli encoder failed (it made no progress)",
                ));
            }
            input = &input[read..];
        }
    }
}
