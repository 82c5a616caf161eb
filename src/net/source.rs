//! An fd the loop watches for an owner that awaits it: the registration under every socket and
//! pipe type of [`net`](crate::net).
//!
//! A [`Source`] remembers, per direction, whether the fd is believed ready. It starts ready, so
//! an operation always tries its system call first; only a `WouldBlock` (or a short read or
//! write, see `net/stream.rs`) clears the direction, and only then does the awaiting task
//! register its waker and the fd get watched. From then on, one of two ways, which the kind of
//! fd decides ([`FdKind::trigger`], the one place the rule is written):
//!
//! - **Edge-triggered**, for the TCP streams and pipes tulip made itself, where the selector
//!   [supports it](tulip_sys::Selector::supports_edge) (epoll): the fd is registered once, for
//!   both directions, and never changed. An event only sets a direction ready again, and the
//!   kernel does not re-check the fd at every wait as it must for a level-triggered one.
//! - **Level-triggered** everywhere else: the selector keeps watching a direction across waits
//!   and stops as soon as an event finds nobody waiting in it, so a socket whose owner does not
//!   read is not reported again and again.
//!
//! Which is which follows from "a short read means drained", which an edge-triggered reader
//! relies on: nothing reports what such a read left behind. It holds for a pipe tulip made and
//! for TCP, but for TCP's urgent mark, which the event flags (`keep_reading`). It fails for
//! adopted fds of unknown type (a terminal, a `SOCK_SEQPACKET` socket or a packet-mode pipe
//! stop at a message boundary) and for Unix streams (a read stops after passed fds, or at an
//! out-of-band byte): those stay level-triggered.
//!
//! Either way a ping-pong costs no registration change in steady state, and dropping the
//! `Source` unregisters the fd, before its owner closes it.
//!
//! Wakers are woken straight from the loop's dispatch of the event (no callback in between):
//! the fd is owned by the socket type, so its number cannot be closed and reused while an
//! event for it is in flight, and no generation check is needed.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};

use tulip_sys::{Event, Interest};

use crate::event_loop::{is_running_loop, with_running_loop, Direction, IoSource, WeakLoop};
use crate::task::budget::spend;
use crate::EventLoop;

/// The tasks waiting for one direction of an fd. Usually one task waits again and again (a
/// connection's reader): its waker is kept between waits, so a wait clones no waker. A second
/// waiter (two tasks reading one socket) is kept too, rather than silently replacing the first.
#[derive(Default)]
struct Waiters {
    /// The usual waiter's waker, kept after it is woken (see `waiting`).
    first: Option<Waker>,
    /// Whether `first` waits now.
    waiting: bool,
    /// The other waiters, rare: boxed, so that the usual fd carries 8 bytes for them, not 24
    /// (`None` whenever there are none).
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<Waker>>>,
}

impl Waiters {
    fn register(&mut self, waker: &Waker) {
        match &self.first {
            Some(first) if first.will_wake(waker) => self.waiting = true,
            _ if !self.waiting => {
                self.first = Some(waker.clone());
                self.waiting = true;
            }
            _ => {
                let more = self.more.get_or_insert_with(Box::default);
                if !more.iter().any(|w| w.will_wake(waker)) {
                    more.push(waker.clone());
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        !self.waiting && self.more.is_none()
    }

    /// Forget the waiters without waking them (their wait failed).
    fn clear(&mut self) {
        self.waiting = false;
        self.more = None;
    }
}

/// The loop's view of a [`Source`]: what the selector watches and who waits. Shared between
/// the owner and the loop's I/O table (while registered).
struct SourceState {
    fd: RawFd,
    /// Directions believed ready: set by events, cleared by a `WouldBlock`.
    ready: Cell<Interest>,
    /// On an edge-triggered fd, a short read no longer means "drained", until a real
    /// `WouldBlock`: set by a hang-up (the end of the stream may come in the same event as the
    /// last data) and by urgent data (TCP stops a read at the urgent mark, more queued behind
    /// it). Either way no further event would come for what is left.
    keep_reading: Cell<bool>,
    /// What the selector watches for this fd; empty when it is not registered.
    armed: Cell<Interest>,
    readers: RefCell<Waiters>,
    writers: RefCell<Waiters>,
}

impl SourceState {
    fn waiters(&self, direction: Direction) -> &RefCell<Waiters> {
        match direction {
            Direction::Read => &self.readers,
            Direction::Write => &self.writers,
        }
    }

    /// An event found `direction` ready (`unsure`: a hang-up or urgent data, see
    /// `keep_reading`): remember it and wake its waiters. Returns false if nobody was waiting
    /// (the loop then stops watching that direction, if it is level-triggered).
    fn on_ready(&self, direction: Direction, unsure: bool) -> bool {
        self.ready.set(self.ready.get() | direction.interest());
        if unsure && direction == Direction::Read && self.armed.get().is_edge() {
            self.keep_reading.set(true);
        }
        let waiters = self.waiters(direction);
        let (first, more) = {
            let mut waiters = waiters.borrow_mut();
            if waiters.is_empty() {
                return false;
            }
            let first = match std::mem::take(&mut waiters.waiting) {
                true => waiters.first.take(),
                false => None,
            };
            (first, waiters.more.take())
        };
        // Woken outside the borrow: a waker may run arbitrary code, even poll at once.
        if let Some(first) = &first {
            first.wake_by_ref();
        }
        if let Some(more) = more {
            more.into_iter().for_each(Waker::wake);
        }
        // Kept for the next wait, unless that wait registered a waker already.
        if let Some(first) = first {
            waiters.borrow_mut().first.get_or_insert(first);
        }
        true
    }
}

/// What an fd is, as far as moving its bytes and watching it go: every socket and pipe type
/// of [`net`](crate::net) says which when it makes its [`Source`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum FdKind {
    /// A TCP stream socket tulip made (`connect`, `accept`).
    TcpStream,
    /// A Unix stream socket tulip made (`connect`, `accept`, `pair`).
    UnixStream,
    /// A pipe end tulip made.
    Pipe,
    /// Any other socket: a listener, a datagram socket, or one the user handed in.
    Socket,
    /// An fd the user handed in as a pipe: a pipe, a terminal, a character device, ...
    Adopted,
}

impl FdKind {
    /// Whether its bytes move with `recv` / `send` (a socket) rather than `read` / `write`.
    pub(crate) fn is_socket(self) -> bool {
        !matches!(self, FdKind::Pipe | FdKind::Adopted)
    }

    /// How the loop watches it: the trigger-mode rule (see the module doc). Edge-triggered
    /// only where a short read means "drained": a TCP stream (its urgent mark aside, which the
    /// event flags) or a pipe that tulip made. Never for a Unix stream (a read stops after
    /// passed fds, or at an out-of-band byte), nor for an fd of unknown type (a terminal, a
    /// `SOCK_SEQPACKET` socket or a packet-mode pipe stops at a message boundary).
    pub(crate) fn trigger(self) -> Trigger {
        match self {
            FdKind::TcpStream | FdKind::Pipe => Trigger::Edge,
            FdKind::UnixStream | FdKind::Socket | FdKind::Adopted => Trigger::Level,
        }
    }
}

/// How a [`Source`] may be watched; [`FdKind::trigger`] decides.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Level-triggered only.
    Level,
    /// Edge-triggered where the selector can (it then ignores the other directions' changes).
    Edge,
}

/// An owned fd's registration with the loop it is awaited on (see the module doc).
pub(crate) struct Source {
    trigger: Trigger,
    state: Rc<SourceState>,
    /// The loop the fd is registered with (or was last).
    lp: RefCell<WeakLoop>,
    /// Set if the fd could not be made ready for the loop (its flags could not be set, in a
    /// conversion that cannot fail): every operation then fails with this OS error.
    failed: RefCell<Option<io::Error>>,
    /// Whether `failed` holds an error: one flag to test on every operation.
    has_failed: Cell<bool>,
}

impl Source {
    /// A source for `fd`, an fd of `kind` which the caller owns, has made non-blocking, and
    /// closes only after dropping (or [`deregister`](Self::deregister)ing) this.
    pub(crate) fn new(fd: RawFd, kind: FdKind) -> Source {
        Source {
            trigger: kind.trigger(),
            state: Rc::new(SourceState {
                fd,
                ready: Cell::new(Interest::BOTH),
                keep_reading: Cell::new(false),
                armed: Cell::new(Interest::empty()),
                readers: RefCell::default(),
                writers: RefCell::default(),
            }),
            lp: RefCell::new(WeakLoop::default()),
            failed: RefCell::new(None),
            has_failed: Cell::new(false),
        }
    }

    /// Make every later operation fail with `error` (see `failed`).
    pub(crate) fn fail(&self, error: io::Error) {
        *self.failed.borrow_mut() = Some(error);
        self.has_failed.set(true);
    }

    /// Ready if `direction` is believed ready; otherwise the task's waker is registered, the
    /// fd watched for `direction` on the running loop, and `Pending` returned.
    ///
    /// # Errors
    /// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) if the fd must be waited for outside a running loop; the
    /// selector's error if it cannot watch the fd; `AlreadyExists` if the fd has a reader or
    /// writer callback of its own on the loop.
    #[inline]
    pub(crate) fn poll_ready(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.failure() {
            return Poll::Ready(Err(e));
        }
        if self.state.ready.get().contains(direction.interest()) {
            return match spend(cx) {
                true => Poll::Ready(Ok(())),
                false => Poll::Pending,
            };
        }
        self.park(direction, cx)
    }

    /// `poll_ready` for a direction not ready: register the waker, make sure the fd is
    /// watched, and return `Pending` (or the error of watching it). Out of line: the ready
    /// path is the one worth inlining into every operation.
    #[inline(never)]
    fn park(&self, direction: Direction, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let bit = direction.interest();
        self.state
            .waiters(direction)
            .borrow_mut()
            .register(cx.waker());
        let watched = self.state.armed.get().contains(bit) && is_running_loop(&self.lp.borrow());
        if !watched {
            if let Err(e) = self.arm(bit) {
                self.state.waiters(direction).borrow_mut().clear();
                return Poll::Ready(Err(e));
            }
        }
        Poll::Pending
    }

    /// The error of `fail`, again, if the source failed.
    #[inline]
    fn failure(&self) -> Option<io::Error> {
        match self.has_failed.get() {
            true => self.failed_again(),
            false => None,
        }
    }

    #[cold]
    #[inline(never)]
    fn failed_again(&self) -> Option<io::Error> {
        self.failed
            .borrow()
            .as_ref()
            .map(|e| match e.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(e.kind(), e.to_string()),
            })
    }

    /// Run `op` once, without waiting (the `try_*` methods). A `WouldBlock` clears
    /// `direction`, as in [`poll_io`](Self::poll_io): otherwise the next wait for it
    /// (`readable`, `writable`) would return at once, and a loop of waits and tries would spin
    /// instead of parking.
    pub(crate) fn try_io<R>(
        &self,
        direction: Direction,
        op: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let result = op();
        if matches!(&result, Err(e) if is_would_block(e)) {
            self.would_block(direction);
        }
        result
    }

    /// The last operation in `direction` found the fd not ready (a short count, or
    /// `WouldBlock`). Reading stays ready after a short count while `keep_reading` says so.
    #[inline]
    pub(crate) fn clear_ready(&self, direction: Direction) {
        if direction == Direction::Read && self.state.keep_reading.get() {
            return;
        }
        let ready = self.state.ready.get().remove(direction.interest());
        self.state.ready.set(ready);
    }

    /// An operation in `direction` said `WouldBlock`: not ready, whatever was believed.
    #[inline]
    fn would_block(&self, direction: Direction) {
        if direction == Direction::Read {
            self.state.keep_reading.set(false);
        }
        self.clear_ready(direction);
    }

    /// Run `op` until it does not block: try it, and on `WouldBlock` wait for `direction`
    /// and try again. `EINTR` is retried; neither ever reaches the caller.
    pub(crate) fn poll_io<R>(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            ready!(self.poll_ready(direction, cx))?;
            match op() {
                Err(e) if is_would_block(&e) => self.would_block(direction),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// [`poll_io`](Self::poll_io) as a future.
    pub(crate) async fn io<R>(
        &self,
        direction: Direction,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_io(direction, cx, &mut op)).await
    }

    /// Wait until `direction` is ready, without an operation (a connect in progress).
    pub(crate) async fn ready(&self, direction: Direction) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_ready(direction, cx)).await
    }

    /// Watch `bit` too, on the running loop (moving the registration there if the fd was
    /// registered with another loop).
    fn arm(&self, bit: Interest) -> io::Result<()> {
        with_running_loop(|lp| {
            if !self.lp.borrow().is(lp) {
                self.deregister();
                *self.lp.borrow_mut() = lp.downgrade();
            }
            let state = &self.state;
            let armed = state.armed.get();
            let wanted = armed | bit;
            if !armed.is_empty() {
                lp.rewatch_source(state.fd, wanted)?;
                state.armed.set(wanted);
                return Ok(());
            }
            // Edge-triggered: registered once for both directions, and never changed.
            let wanted = match self.trigger == Trigger::Edge && lp.supports_edge() {
                true => Interest::BOTH | Interest::EDGE,
                false => wanted,
            };
            lp.watch_source(state.fd, Rc::clone(state) as Rc<dyn IoSource>, wanted)?;
            state.armed.set(wanted);
            Ok(())
        })?
    }

    /// Stop watching the fd (for `Drop`, and before giving the fd away with `into_raw_fd`).
    pub(crate) fn deregister(&self) {
        if self.state.armed.get().is_empty() {
            return;
        }
        if let Some(lp) = self.lp.borrow().upgrade() {
            lp.unwatch_source(self.state.fd, &*self.state);
        }
        self.state.armed.set(Interest::empty());
    }
}

/// Whether `e` is `WouldBlock`, told by its errno where it has one: a compare, where `kind()`
/// is a call that decodes it (every parked read meets one).
#[inline]
fn is_would_block(e: &io::Error) -> bool {
    match e.raw_os_error() {
        Some(code) => code == tulip_sys::errno::EAGAIN,
        None => e.kind() == io::ErrorKind::WouldBlock,
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("fd", &self.state.fd)
            .field("ready", &self.state.ready.get())
            .field("armed", &self.state.armed.get())
            .finish()
    }
}

impl IoSource for SourceState {
    /// Wake the tasks awaiting what `event` reports; stop watching the directions nobody
    /// awaits (unless edge-triggered: the fd is then reported only when its readiness changes).
    fn on_event(&self, lp: &EventLoop, event: &Event) {
        let armed = self.armed.get();
        let unsure = event.is_hangup() || event.is_priority();
        let mut idle = Interest::empty();
        if event.is_readable() && armed.is_readable() && !self.on_ready(Direction::Read, unsure) {
            idle |= Interest::READABLE;
        }
        if event.is_writable() && armed.is_writable() && !self.on_ready(Direction::Write, unsure) {
            idle |= Interest::WRITABLE;
        }
        if !idle.is_empty() && !armed.is_edge() {
            self.settle(lp, idle);
        }
    }

    fn forget(&self) {
        self.armed.set(Interest::empty());
    }
}

impl SourceState {
    /// After an event: keep watching only the directions that still have waiters (`idle` had
    /// none). The selector's `modify`, or `unregister` once nothing is left.
    fn settle(&self, lp: &EventLoop, idle: Interest) {
        let armed = self.armed.get();
        let wanted = armed.remove(idle);
        if wanted == armed {
            return;
        }
        if wanted.is_empty() {
            lp.unwatch_source(self.fd, self);
            self.armed.set(wanted);
        } else if lp.rewatch_source(self.fd, wanted).is_ok() {
            self.armed.set(wanted);
        }
    }
}
