//! WASI's monotonic-clock subscriptions, held to the call's deadline. The epoch interrupt that
//! bounds a call only fires while the guest runs wasm: a guest blocked in the host, waiting on
//! a clock (`std::thread::sleep`, a `poll` with a long timeout), would hold its store's worker
//! for as long as it asked. So a subscription that would end past the current call's deadline
//! ends the call at once, as a time limit ([`WaitPastDeadline`]): in the plugin world there is
//! nothing else to wait for (no network, no stdin), so such a wait can only overrun. Shorter
//! waits, and everything else about the clock, are wasmtime-wasi's.

use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::StoreContextMut;
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host as _;

use super::super::state::HostState;

/// The interface wasmtime-wasi 48 defines (guests importing any 0.2.x version resolve to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// A wait the guest asked for that would end past its call's deadline: the call's failure,
/// reported as a time limit.
#[derive(Debug, thiserror::Error)]
#[error("the guest asked to wait {0:?}, past its call's deadline")]
pub(crate) struct WaitPastDeadline(pub(crate) Duration);

/// Replace `subscribe-duration` and `subscribe-instant` in `linker` (after wasmtime-wasi added
/// its own) with versions that refuse a wait past the call's deadline.
pub(crate) fn bound_subscriptions(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut cx: StoreContextMut<'_, HostState>, (nanos,): (u64,)| {
            cx.data().check_wait(nanos)?;
            Ok((cx.data_mut().clocks().subscribe_duration(nanos)?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut cx: StoreContextMut<'_, HostState>, (when,): (u64,)| {
            let now = cx.data_mut().clocks().now()?;
            cx.data().check_wait(when.saturating_sub(now))?;
            Ok((cx.data_mut().clocks().subscribe_instant(when)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
