//! The `compression` import: Brotli streams run natively for the guest's spool, with the
//! core's own encoder ([`LocalStream`]), so a segment's bytes are the same as if the guest had
//! compressed them, at native speed.
//!
//! Each `brotli-stream` resource is a [`BrotliHandle`] in the instance's resource table. An
//! instance keeps at most [`MAX_STREAMS`] open (a stream at quality 11 holds tens of MiB of
//! encoder state outside the guest's memory cap); compressing never starts past the call's
//! deadline, which ends the call as a time limit like any other overrun.

use edgestore::spool::compress::LocalStream;
use wasmtime::component::Resource;

use crate::component::bindings::{self, wit_types as t};
use crate::component::convert::wit_error;
use crate::component::state::{BrotliHandle, HostState};

/// Streams one instance may keep open at once (a spool finishes one segment at a time).
pub(crate) const MAX_STREAMS: usize = 4;

type WitResult<T> = wasmtime::Result<std::result::Result<T, t::Error>>;

impl bindings::edgestore::storage::compression::Host for HostState {}

impl bindings::edgestore::storage::compression::HostBrotliStream for HostState {
    fn open(&mut self, level: u32, size_hint: u64) -> WitResult<Resource<BrotliHandle>> {
        if level > 11 {
            return Ok(Err(wit_error(
                t::ErrorCode::InvalidInput,
                format!("Brotli quality {level} is outside 0..=11"),
            )));
        }
        if self.brotli_streams >= MAX_STREAMS {
            return Ok(Err(t::Error {
                code: t::ErrorCode::Busy,
                class: t::ErrorClass::Resource,
                message: format!(
                    "at most {MAX_STREAMS} Brotli streams may be open at once: finish or drop one"
                ),
            }));
        }
        let handle = self.table.push(BrotliHandle {
            stream: LocalStream::new(level, size_hint),
            finished: false,
        })?;
        self.brotli_streams += 1;
        Ok(Ok(handle))
    }

    fn write(&mut self, this: Resource<BrotliHandle>, data: Vec<u8>) -> WitResult<Vec<u8>> {
        self.check_deadline("compressing")?;
        let h = self.table.get_mut(&this)?;
        if h.finished {
            return Ok(Err(finished()));
        }
        Ok(h.stream.write_chunk(&data).map_err(internal))
    }

    fn finish(&mut self, this: Resource<BrotliHandle>) -> WitResult<Vec<u8>> {
        self.check_deadline("compressing")?;
        let h = self.table.get_mut(&this)?;
        if h.finished {
            return Ok(Err(finished()));
        }
        h.finished = true;
        Ok(h.stream.finish_stream().map_err(internal))
    }

    fn drop(&mut self, this: Resource<BrotliHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.brotli_streams = self.brotli_streams.saturating_sub(1);
        Ok(())
    }
}

fn finished() -> t::Error {
    wit_error(
        t::ErrorCode::Closed,
        "the Brotli stream is already finished".into(),
    )
}

/// The encoder writes into memory: any failure is a bug, not the guest's input.
fn internal(e: std::io::Error) -> t::Error {
    wit_error(t::ErrorCode::Internal, format!("Brotli: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bindings::edgestore::storage::compression::HostBrotliStream as _;

    use super::*;
    use crate::component::memory_anchors::MemoryAnchors;
    use crate::grants::{Grants, Labels};

    fn state(dir: &std::path::Path) -> HostState {
        let grants = Arc::new(Grants::new(dir, false, Labels::default()).unwrap());
        let anchors = Arc::new(MemoryAnchors::new(&grants).unwrap());
        HostState::new(
            wasmtime_wasi::WasiCtx::builder().build(),
            64 << 20,
            grants,
            anchors,
            Arc::new(AtomicU64::new(0)),
        )
    }

    #[test]
    fn streams_write_the_core_encoders_bytes_and_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = state(dir.path());
        let data = br#"{"metric_name":"cpu","value":"1"},"#.repeat(5_000);
        let mut want = LocalStream::new(5, data.len() as u64);
        let mut want_bytes = want.write_chunk(&data).unwrap();
        want_bytes.extend(want.finish_stream().unwrap());

        let s = st.open(5, data.len() as u64).unwrap().unwrap();
        let mut got = st
            .write(Resource::new_borrow(s.rep()), data.clone())
            .unwrap()
            .unwrap();
        got.extend(st.finish(Resource::new_borrow(s.rep())).unwrap().unwrap());
        assert_eq!(got, want_bytes);
        let again = st
            .write(Resource::new_borrow(s.rep()), data)
            .unwrap()
            .unwrap_err();
        assert_eq!(again.code, t::ErrorCode::Closed);

        let bad = st.open(12, 0).unwrap().unwrap_err();
        assert_eq!(bad.code, t::ErrorCode::InvalidInput);

        // Four open at once (the finished one still counts until dropped), then refused.
        let mut open = vec![s];
        for _ in 1..MAX_STREAMS {
            open.push(st.open(11, 0).unwrap().unwrap());
        }
        let refused = st.open(1, 0).unwrap().unwrap_err();
        assert_eq!(
            (refused.code, refused.class),
            (t::ErrorCode::Busy, t::ErrorClass::Resource)
        );
        st.drop(open.pop().unwrap()).unwrap();
        assert!(st.open(1, 0).unwrap().is_ok());
    }

    #[test]
    fn no_compressing_past_the_calls_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = state(dir.path());
        let s = st.open(6, 0).unwrap().unwrap();
        st.begin_call(Some(Instant::now() + Duration::from_secs(60)));
        assert!(st
            .write(Resource::new_borrow(s.rep()), b"[1]".to_vec())
            .is_ok());
        st.begin_call(Instant::now().checked_sub(Duration::from_millis(1)));
        let err = st
            .write(Resource::new_borrow(s.rep()), b"[1]".to_vec())
            .unwrap_err();
        assert!(err
            .downcast_ref::<crate::component::state::PastDeadline>()
            .is_some());
        let err = st.finish(Resource::new_borrow(s.rep())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the call's deadline passed before compressing"
        );
    }
}
