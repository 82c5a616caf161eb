//! Running a test's coroutine on a loop, for the socket and transport tests: a loop per
//! backend, a bound that turns a hang into a failure, and a wait for a condition. Included with
//! `#[path]` by the tests that need them.

#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::time::Duration;

use tulip::selectors::Backend;
use tulip::EventLoop;

/// Generous: debug builds, two CPUs, and every backend's tests at once. Only a hang reaches it.
pub const TIMEOUT: Duration = Duration::from_secs(120);

pub fn new_loop(b: Backend) -> EventLoop {
    EventLoop::with_backend(b).expect("a loop on every backend per_backend! instantiates")
}

/// Run `test` on `lp` to its end, failing the test on an error, a panic or [`TIMEOUT`].
pub fn run_test<T: 'static>(
    lp: &EventLoop,
    test: impl Future<Output = io::Result<T>> + 'static,
) -> T {
    match lp.run_until_complete(tulip::wait_for(test, TIMEOUT)) {
        Ok(Ok(Ok(value))) => value,
        Ok(Ok(Err(e))) => panic!("the test failed: {e} ({e:?})"),
        Ok(Err(e)) => panic!("the test did not finish within {TIMEOUT:?}: {e}"),
        Err(e) => panic!("the test's task failed (a panic is printed above): {e}"),
    }
}

/// Wait until `condition` holds, looking every millisecond; [`TIMEOUT`] bounds the wait.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> io::Result<()> {
    while !condition() {
        tulip::sleep(Duration::from_millis(1)).await?;
    }
    Ok(())
}
