//! Living through `fork(2)`, libuv's `uv_loop_fork` answer: a child that inherited a loop gets
//! [`LoopError::Forked`] from every call that would touch the kernel objects it shares with the
//! parent, until it calls [`EventLoop::after_fork`], which gives the loop fresh ones with every
//! registration carried over.
//!
//! What the child inherits, and why it must not use it:
//! - an epoll instance is *shared*: the child's `epoll_ctl` would change the parent's interest
//!   list (and its `epoll_wait` steal the parent's events); a kqueue is not inherited at all;
//! - the notifier's eventfd and the signal pipe are shared: the child's signals would wake the
//!   parent's loop;
//! - an io_uring ring is shared memory: reaping its completions takes the parent's;
//! - the thread pools have no threads in the child: waiting for them never ends.
//!
//! The child therefore never closes or unregisters what it inherited: the old selector,
//! notifier and aio engine are leaked (an fd or a mapping each), the signal pipe is
//! unsubscribed (the subscription table is process memory) and its pipe fds closed, which
//! leaves the parent's copies open.

use std::io;

use super::{EventLoop, NOTIFIER_TOKEN, SIGNAL_TOKEN};
use crate::LoopError;

impl EventLoop {
    /// True in a child process that inherited this loop through `fork`, until
    /// [`after_fork`](Self::after_fork). One relaxed atomic load.
    #[inline]
    pub fn is_forked(&self) -> bool {
        self.inner.fork_generation.get() != tulip_sys::fork::generation()
    }

    /// Make a loop inherited through `fork` usable in the child, as libuv's `uv_loop_fork`:
    /// a fresh selector of the same backend and a fresh notifier, every reader, writer and
    /// socket registered again for the interest it has now (edge-triggered ones as they were),
    /// a fresh signal pipe subscribed to the same signals, and the aio engine and the executor
    /// pool started anew on their next use. Pending callbacks and timers are kept.
    ///
    /// What the parent owns is left alone: its selector, notifier and io_uring ring are not
    /// closed in the child (an fd or a mapping each stays open), so the parent's registrations
    /// are untouched. File I/O requests and executor jobs that were in flight at the fork
    /// belong to the parent: their futures never complete in the child.
    ///
    /// In the process that made the loop (or after a first `after_fork`), it does nothing.
    /// Without it, every call of an inherited loop that could touch the parent's kernel
    /// objects returns [`LoopError::Forked`]. A loop made in the child needs nothing.
    ///
    /// Only `fork` through libc is noticed (a raw `clone` system call is not), and a
    /// multi-threaded parent makes the usual `fork` caveats apply: the child has only the
    /// forking thread, and a lock another thread held at the fork (the allocator's, tulip's
    /// signal table's) stays held.
    ///
    /// # Errors
    /// [`LoopError::Closed`]; the kernel's error if the selector, the notifier or the signal
    /// pipe cannot be made, or if a watched fd cannot be registered again (`EBADF` for one
    /// closed without `remove_reader`); the loop then stays as it was (still forked), and
    /// `after_fork` can be called again.
    pub fn after_fork(&self) -> io::Result<()> {
        if self.is_closed() {
            return Err(LoopError::Closed.into());
        }
        if !self.is_forked() {
            return Ok(());
        }
        let mut selector = self.inner.backend.open()?;
        let notifier = selector.notifier(NOTIFIER_TOKEN)?;
        self.inner.fds.borrow().register_all(&mut *selector)?;
        let pipe = self
            .inner
            .signals
            .borrow()
            .renew_pipe(&mut *selector, SIGNAL_TOKEN)?;

        // Nothing can fail from here on.
        let inherited = self.inner.selector.borrow_mut().replace(selector);
        std::mem::forget(inherited);
        let inherited = self.inner.remote.replace_notifier(notifier);
        std::mem::forget(inherited);
        // The new pipe is subscribed already: dropping the old one restores no disposition.
        let old_pipe = self.inner.signals.borrow_mut().replace_pipe(pipe);
        drop(old_pipe);
        self.abandon_engines();
        self.inner
            .fork_generation
            .set(tulip_sys::fork::generation());
        self.inner
            .remote
            .set_fork_generation(tulip_sys::fork::generation());
        Ok(())
    }

    /// Closing (or dropping) an inherited loop in the child without `after_fork`: leak what
    /// belongs to the parent, so that `release` does not unregister, reap or join it.
    pub(super) fn abandon_inherited(&self) {
        let inherited = self.inner.selector.borrow_mut().take();
        std::mem::forget(inherited);
        let inherited = self.inner.remote.take_notifier();
        std::mem::forget(inherited);
        self.abandon_engines();
    }

    /// The aio engine and the executor pool, whose requests and threads are the parent's.
    fn abandon_engines(&self) {
        self.abandon_aio();
        let pool = self.inner.blocking_pool.take();
        std::mem::forget(pool);
    }
}
