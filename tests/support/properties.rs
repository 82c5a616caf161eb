//! What the socket layer's property tests (`net_properties.rs`, `transport_properties.rs`)
//! share: their proptest configuration, a case run on a fresh loop of one backend with a bound
//! on its time, the byte pattern they write, and `on_end!`, which reaches the stream inside an
//! enum of streams. Included with `#[macro_use] #[path = "support/properties.rs"] mod ...;`.

use std::future::Future;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::ProptestConfig;
use proptest::test_runner::TestCaseError;
use tulip::selectors::Backend;
use tulip::EventLoop;

/// Generous: a case takes well under a second in a debug build, with every test thread busy.
/// Only a hang reaches it.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The configuration of every property: 32 cases unless `PROPTEST_CASES` says otherwise,
/// and shrinking bounded in time.
pub fn config() -> ProptestConfig {
    // `ProptestConfig::default()` reads PROPTEST_CASES and PROPTEST_MAX_SHRINK_TIME; only the
    // built-in defaults are changed: fewer cases, and a bound on shrinking, where each
    // candidate of a hanging case costs a whole TIMEOUT.
    let default = ProptestConfig::default();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let max_shrink_time = match default.max_shrink_time {
        0 => 60_000,
        set => set,
    };
    ProptestConfig {
        cases,
        max_shrink_time,
        ..default
    }
}

/// Run `test` on a new loop of `backend`: its value, or a failed case for its error, its
/// panic or a hang.
pub fn run_on<T: 'static>(
    backend: Backend,
    test: impl Future<Output = io::Result<T>> + 'static,
) -> Result<T, TestCaseError> {
    let fail = |what: String| TestCaseError::fail(format!("on {backend}: {what}"));
    let lp = EventLoop::with_backend(backend).map_err(|e| fail(format!("no loop: {e}")))?;
    match lp.run_until_complete(tulip::wait_for(test, TIMEOUT)) {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(e))) => Err(fail(format!("{e} ({e:?})"))),
        Ok(Err(e)) => Err(fail(format!("no end within {TIMEOUT:?}: {e}"))),
        Err(e) => Err(fail(format!("the test's task failed: {e}"))),
    }
}

// ---- The bytes ----------------------------------------------------------------------------------

/// The period of the pattern written: a prime, so that a lost, repeated or reordered piece
/// shows (unless its length is a multiple of it).
const PERIOD: usize = 251;

/// The longest slice of the pattern one write takes.
#[allow(dead_code)] // named only by transport_properties; net_properties writes shorter pieces
pub const MAX_PIECE: usize = 100_000;

/// The pattern from 0, a little longer than [`MAX_PIECE`] plus a period.
pub fn pattern_block() -> &'static [u8] {
    static BLOCK: OnceLock<Vec<u8>> = OnceLock::new();
    BLOCK.get_or_init(|| (0..PERIOD * 512).map(|i| (i % PERIOD) as u8).collect())
}

/// `len` (at most [`MAX_PIECE`]) bytes of the pattern, from byte `offset` of it on.
pub fn pattern_at(offset: usize, len: usize) -> &'static [u8] {
    &pattern_block()[offset % PERIOD..][..len]
}

/// `$body` with `$s` bound to the stream inside `$end`, whichever of `$ty`'s variants it is.
macro_rules! on_end {
    ($end:expr, $ty:ident[$($variant:ident),+], $s:ident => $body:expr) => {
        match $end {
            $($ty::$variant($s) => $body,)+
        }
    };
}
