//! The `Selector` contract shared by every backend, and the small value types it speaks in.

use std::fmt;
use std::io;
use std::ops::{BitOr, BitOrAssign};
use std::os::fd::RawFd;
use std::time::Duration;

use crate::{Backend, Notifier};

/// A user-chosen value that identifies a registration in the events `select` returns.
///
/// The selector never interprets it: an event loop typically uses a slab index or the fd itself.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub usize);

/// What a registration waits for: readable, writable, or both; level-triggered unless
/// [`EDGE`](Interest::EDGE) is added.
///
/// The empty interest can be expressed (so that a computed interest can be checked), but
/// `register` and `modify` reject it with [`io::ErrorKind::InvalidInput`]: to stop waiting for an
/// fd, `unregister` it.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct Interest(u8);

impl Interest {
    /// Wait until a read would not block.
    pub const READABLE: Interest = Interest(1);
    /// Wait until a write would not block.
    pub const WRITABLE: Interest = Interest(2);
    /// Wait for either.
    pub const BOTH: Interest = Interest(1 | 2);
    /// A modifier: report a direction when it becomes ready, once, rather than at every
    /// `select` for as long as it stays ready (epoll's `EPOLLET`). The owner must then read or
    /// write until `WouldBlock` before it waits again, or it waits forever (a short count
    /// means the same only for byte streams without urgent data; for reading, the event also
    /// says [`Event::is_priority`] when urgent data is pending).
    /// Only where [`Selector::supports_edge`] says so; the others reject it with
    /// [`io::ErrorKind::Unsupported`]. Not part of Python's `selectors`: tulip's socket types
    /// use it, as they track readiness themselves.
    pub const EDGE: Interest = Interest(4);

    /// The interest in nothing: valid as a value, rejected by `register` and `modify`.
    pub const fn empty() -> Interest {
        Interest(0)
    }

    /// True if this interest waits for no direction ([`Interest::empty`], or `EDGE` alone).
    pub const fn is_empty(self) -> bool {
        self.0 & Self::BOTH.0 == 0
    }

    /// True if this interest is edge-triggered ([`Interest::EDGE`]).
    pub const fn is_edge(self) -> bool {
        self.0 & Self::EDGE.0 != 0
    }

    /// True if this interest includes readability.
    pub const fn is_readable(self) -> bool {
        self.0 & Self::READABLE.0 != 0
    }

    /// True if this interest includes writability.
    pub const fn is_writable(self) -> bool {
        self.0 & Self::WRITABLE.0 != 0
    }

    /// True if this interest includes all of `other`.
    pub const fn contains(self, other: Interest) -> bool {
        self.0 & other.0 == other.0
    }

    /// This interest without the parts of `other`.
    #[must_use]
    pub const fn remove(self, other: Interest) -> Interest {
        Interest(self.0 & !other.0)
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

impl BitOrAssign for Interest {
    fn bitor_assign(&mut self, rhs: Interest) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.is_readable(), self.is_writable()) {
            (true, true) => "READABLE | WRITABLE",
            (true, false) => "READABLE",
            (false, true) => "WRITABLE",
            (false, false) => "(empty)",
        })?;
        if self.is_edge() {
            f.write_str(" | EDGE")?;
        }
        Ok(())
    }
}

/// The readiness an event reports: a set of `READABLE`, `WRITABLE`, `ERROR` and `HANGUP`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct Ready(u8);

impl Ready {
    /// A read would not block (data, EOF or a pending error: the read says which).
    pub const READABLE: Ready = Ready(1);
    /// A write would not block (buffer space, or an error the write will return).
    pub const WRITABLE: Ready = Ready(2);
    /// The kernel flagged an error condition (`POLLERR`, `EPOLLERR`, kqueue's `EV_EOF` with an
    /// error code). `select(2)` has no such notion and never sets it.
    pub const ERROR: Ready = Ready(4);
    /// The peer closed (its writing side): reads will return EOF once drained (`POLLHUP` /
    /// `POLLRDHUP`, `EPOLLHUP` / `EPOLLRDHUP`, kqueue's `EV_EOF`). `select(2)` cannot tell a
    /// hang-up from data and reports it as `READABLE` only.
    pub const HANGUP: Ready = Ready(8);
    /// Urgent (out-of-band) data is pending: TCP's urgent mark, where a read stops short with
    /// data still queued. Only an edge-triggered epoll registration asks for it (`EPOLLPRI`).
    pub const PRIORITY: Ready = Ready(16);

    /// No readiness.
    pub const fn empty() -> Ready {
        Ready(0)
    }

    /// True if nothing is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True if every flag of `other` is set in `self`.
    pub const fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }

    /// The readable and writable parts, as an [`Interest`].
    pub const fn as_interest(self) -> Interest {
        Interest(self.0 & Interest::BOTH.0)
    }

    /// The readiness a level-triggered backend reports for raw kernel conditions, as Python's
    /// `selectors` computes it: an error or a hang-up makes the fd ready for whatever it is
    /// registered for (the next read or write returns the error or EOF instead of blocking), and
    /// readability and writability are masked by the registered interest.
    pub(crate) fn from_conditions(
        interest: Interest,
        readable: bool,
        writable: bool,
        error: bool,
        hangup: bool,
    ) -> Ready {
        let mut bits = 0;
        if interest.is_readable() && (readable || error || hangup) {
            bits |= Self::READABLE.0;
        }
        if interest.is_writable() && (writable || error || hangup) {
            bits |= Self::WRITABLE.0;
        }
        if error {
            bits |= Self::ERROR.0;
        }
        if hangup {
            bits |= Self::HANGUP.0;
        }
        Ready(bits)
    }
}

impl BitOr for Ready {
    type Output = Ready;
    fn bitor(self, rhs: Ready) -> Ready {
        Ready(self.0 | rhs.0)
    }
}

impl BitOrAssign for Ready {
    fn bitor_assign(&mut self, rhs: Ready) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::READABLE, "READABLE"),
            (Self::WRITABLE, "WRITABLE"),
            (Self::ERROR, "ERROR"),
            (Self::HANGUP, "HANGUP"),
            (Self::PRIORITY, "PRIORITY"),
        ];
        let mut first = true;
        for (flag, name) in names {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("(empty)")?;
        }
        Ok(())
    }
}

/// One ready fd, as returned by [`Selector::select`].
///
/// `select` returns at most one event per registered fd per call, and only for fds registered
/// when it was called.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    token: Token,
    ready: Ready,
}

impl Event {
    /// An event for `token` with readiness `ready`.
    pub const fn new(token: Token, ready: Ready) -> Event {
        Event { token, ready }
    }

    /// The token the fd was registered with.
    pub const fn token(&self) -> Token {
        self.token
    }

    /// Everything this event reports.
    pub const fn ready(&self) -> Ready {
        self.ready
    }

    /// A read would not block. Always within the registered interest.
    pub const fn is_readable(&self) -> bool {
        self.ready.contains(Ready::READABLE)
    }

    /// A write would not block. Always within the registered interest.
    pub const fn is_writable(&self) -> bool {
        self.ready.contains(Ready::WRITABLE)
    }

    /// The kernel flagged an error on the fd.
    pub const fn is_error(&self) -> bool {
        self.ready.contains(Ready::ERROR)
    }

    /// The peer hung up (never set by the `select` backend, which cannot tell).
    pub const fn is_hangup(&self) -> bool {
        self.ready.contains(Ready::HANGUP)
    }

    /// Urgent data is pending (only for an edge-triggered registration, see
    /// [`Ready::PRIORITY`]).
    pub const fn is_priority(&self) -> bool {
        self.ready.contains(Ready::PRIORITY)
    }
}

/// What an fd is registered for: the answer of [`Selector::registration`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Registration {
    /// The registered interest (never empty).
    pub interest: Interest,
    /// The token its events carry.
    pub token: Token,
}

/// A readiness poller over file descriptors, with the semantics of Python's `selectors`.
///
/// Readiness is **level-triggered** by default, on every backend: an fd that is readable and not
/// drained is reported again by the next `select`. Backends differ only in cost, never in meaning, except
/// for regular files (see below) and for one extension: a backend whose
/// [`supports_edge`](Selector::supports_edge) is true (epoll) also takes edge-triggered
/// registrations ([`Interest::EDGE`]), reported once per readiness change rather than at every
/// `select`; the others refuse them with [`Unsupported`](io::ErrorKind::Unsupported).
///
/// Bookkeeping errors are the same everywhere: registering a registered fd is
/// [`AlreadyExists`](io::ErrorKind::AlreadyExists), modifying or unregistering an unknown one is
/// [`NotFound`](io::ErrorKind::NotFound), an empty interest is
/// [`InvalidInput`](io::ErrorKind::InvalidInput), and so is a negative fd (Python's
/// `ValueError`: no file has one) for every call; a closed fd is the kernel's `EBADF`.
/// A failed `register` or `modify` leaves the selector exactly as it was.
///
/// Closing a registered fd is tolerated: the selector stops watching it (it never makes `select`
/// spin or fail) but keeps its registration until `unregister`, which then succeeds; so `len`
/// and `registration` agree on every backend. `modify` of a closed fd is `EBADF` once the
/// selector has noticed the close (epoll at once, select and poll at their next `select`); if
/// the number meanwhile names a new file, `modify` watches that one.
///
/// Regular files are where the kernels genuinely differ, and their answer is passed on:
/// `select` and `poll` call a file always ready, `epoll` refuses it with `EPERM`, and kqueue's
/// `EVFILT_READ` is ready only while the offset is before the end of the file.
///
/// The trait is object-safe: an event loop holds a `Box<dyn Selector>` chosen at run time
/// ([`Backend::open`]).
pub trait Selector: fmt::Debug {
    /// Which mechanism this is.
    fn backend(&self) -> Backend;

    /// Start watching `fd` for `interest`; its events will carry `token`.
    ///
    /// # Errors
    /// `AlreadyExists` if `fd` is registered, `InvalidInput` for an empty interest (or, on
    /// `select`, an fd at or above `FD_SETSIZE`), `Unsupported` for [`Interest::EDGE`] where
    /// [`supports_edge`](Selector::supports_edge) is false, `InvalidInput` for a negative fd,
    /// `EBADF` for a closed one, and whatever else the kernel says (`EPERM` from epoll for a
    /// regular file).
    fn register(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()>;

    /// Change what a registered `fd` waits for and the token its events carry. An unchanged
    /// interest makes no system call (only the token is taken), as in Python's selectors.
    ///
    /// # Errors
    /// `NotFound` if `fd` is not registered, `InvalidInput` for an empty interest or a negative
    /// fd,
    /// `Unsupported` for [`Interest::EDGE`] where [`supports_edge`](Selector::supports_edge) is
    /// false, and the kernel's error otherwise; on error the old registration stays in force.
    fn modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()>;

    /// Stop watching `fd`. Succeeds (and forgets it) if the fd was closed after registering.
    ///
    /// # Errors
    /// `NotFound` if `fd` is not registered, `InvalidInput` for a negative fd.
    fn unregister(&mut self, fd: RawFd) -> io::Result<()>;

    /// Wait until at least one registered fd is ready or `timeout` passes, and fill `events`
    /// (cleared first) with one event per ready fd. Returns how many.
    ///
    /// `None` blocks until an event (or a [`Notifier`] wake); `Some(Duration::ZERO)` polls; a
    /// positive timeout is rounded *up* to the kernel's resolution, so the call never returns
    /// early for lack of precision. `EINTR` is retried with the time that remains (PEP 475),
    /// measured on the monotonic clock: after a signal, the wait still never ends early.
    /// `events` keeps its capacity across calls: steady-state selects do not allocate.
    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<usize>;

    /// How many fds are registered (including a notifier's, if it uses one).
    fn len(&self) -> usize;

    /// True if no fd is registered.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The interest and token `fd` is registered with, if it is.
    fn registration(&self, fd: RawFd) -> Option<Registration>;

    /// A cross-thread [`Notifier`] whose [`notify`](Notifier::notify) makes a blocked `select`
    /// return an event carrying `token` (readable). It uses an eventfd on Linux, `EVFILT_USER`
    /// on kqueue, a self-pipe elsewhere; for the fd-based ones the fd is registered here and
    /// counts in [`len`](Selector::len).
    ///
    /// A selector may have several notifiers; each wakes it with its own token.
    ///
    /// # Errors
    /// The kernel's, if the wake-up object cannot be created or registered.
    fn notifier(&mut self, token: Token) -> io::Result<Notifier>;

    /// How many system calls this selector has made since it was created (registration,
    /// `select` itself, and any retry or clean-up). Cheap and always on: comparing backends by
    /// syscalls per iteration is one of the things this crate is for.
    fn syscalls(&self) -> u64;

    /// Whether `register` and `modify` accept [`Interest::EDGE`] (epoll does; select, poll
    /// and, for now, kqueue and uring are level-triggered only).
    fn supports_edge(&self) -> bool {
        false
    }

    /// The kernel object's fd (epoll, kqueue), for a host program that nests this selector in
    /// its own poller; `None` for `select` and `poll`, which have none, and for `uring`, whose
    /// ring fd is readable only while completions wait (a fired poll is re-armed by the next
    /// `select`, so a host would miss an fd that stays ready).
    fn as_raw_fd(&self) -> Option<RawFd>;
}
