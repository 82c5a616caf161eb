//! The cross-thread wake-up: a `Notifier` makes a blocked `select` return, from any thread.
//!
//! Three kernel objects serve, one per platform family: an `eventfd` on Linux (one fd, an
//! 8-byte counter), `EVFILT_USER` on kqueue (no fd at all: a user event on the kqueue itself),
//! and a non-blocking self-pipe elsewhere. Whatever the object, an atomic `pending` flag in
//! front of it makes wakes coalesce: between two [`Notifier::drain`]s only the first
//! [`Notifier::notify`] makes a system call, so a flood of wakes costs one event and a waker
//! never blocks, even if nobody ever drains.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Wakes a selector blocked in `select`, from any thread. Cheap to clone; `Send + Sync`.
///
/// Created by [`Selector::notifier`](crate::Selector::notifier), which registers it under a
/// token. The contract with the thread that runs the selector:
/// 1. `notify()` (any thread, any number of times) makes the selector report one readable event
///    with the notifier's token, unless one is already pending;
/// 2. on seeing that event, the selector's thread calls `drain()` *before* looking at whatever
///    the wakers left for it (a queue, a flag): a `notify()` that comes after that look
///    produces a new event, so no wake is ever lost.
#[derive(Clone, Debug)]
pub struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// True from a `notify` that made a system call until the next `drain`.
    pending: AtomicBool,
    object: WakeObject,
}

#[derive(Debug)]
enum WakeObject {
    /// Linux: an eventfd, readable while its counter is non-zero.
    #[cfg(tulip_epoll)]
    EventFd(OwnedFd),
    /// Elsewhere, for select and poll: a pipe, readable while it holds a byte.
    #[cfg_attr(tulip_epoll, allow(dead_code))]
    Pipe { read: OwnedFd, write: OwnedFd },
    /// kqueue: an `EVFILT_USER` event on the kqueue itself (shared, so it outlives neither).
    #[cfg(tulip_kqueue)]
    User { kq: Arc<OwnedFd>, ident: usize },
}

impl Notifier {
    /// A notifier on a new fd-based object (eventfd on Linux, a pipe elsewhere); the caller
    /// registers [`Notifier::fd`] for reading.
    pub(crate) fn with_fd() -> io::Result<Notifier> {
        #[cfg(tulip_epoll)]
        let object = {
            use rustix::event::EventfdFlags;
            let flags = EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC;
            WakeObject::EventFd(rustix::event::eventfd(0, flags)?)
        };
        #[cfg(not(tulip_epoll))]
        let object = {
            let (read, write) = crate::fd::pipe()?;
            WakeObject::Pipe { read, write }
        };
        Ok(Notifier::from_object(object))
    }

    /// A notifier on an `EVFILT_USER` event `ident` of kqueue `kq`, which the kqueue selector
    /// has already added (with `EV_CLEAR`, so delivery resets it).
    #[cfg(tulip_kqueue)]
    pub(crate) fn with_user_event(kq: Arc<OwnedFd>, ident: usize) -> Notifier {
        Notifier::from_object(WakeObject::User { kq, ident })
    }

    fn from_object(object: WakeObject) -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                pending: AtomicBool::new(false),
                object,
            }),
        }
    }

    /// The fd the selector watches for reading, if this notifier has one (not on kqueue).
    pub fn fd(&self) -> Option<RawFd> {
        match &self.inner.object {
            #[cfg(tulip_epoll)]
            WakeObject::EventFd(fd) => Some(fd.as_raw_fd()),
            WakeObject::Pipe { read, .. } => Some(read.as_raw_fd()),
            #[cfg(tulip_kqueue)]
            WakeObject::User { .. } => None,
        }
    }

    /// Wake the selector: its next (or current) `select` returns the notifier's event. Wakes
    /// coalesce until the next [`drain`](Notifier::drain); this never blocks.
    ///
    /// # Errors
    /// The kernel's, which for a live notifier means the process is out of resources; a full
    /// pipe or counter is not an error (the wake is already pending).
    pub fn notify(&self) -> io::Result<()> {
        // SeqCst pairs with the store in `drain`: see the contract on the type.
        if self.inner.pending.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let result = match &self.inner.object {
            #[cfg(tulip_epoll)]
            WakeObject::EventFd(fd) => crate::fd::write(fd.as_fd(), &1u64.to_ne_bytes()).map(drop),
            WakeObject::Pipe { write, .. } => crate::fd::write(write.as_fd(), &[1]).map(drop),
            #[cfg(tulip_kqueue)]
            WakeObject::User { kq, ident } => crate::kqueue::trigger_user_event(kq, *ident),
        };
        match result {
            Ok(()) => Ok(()),
            // Full: an event is already pending in the kernel object.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => {
                self.inner.pending.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Consume pending wakes, on the selector's thread, after the notifier's event was seen
    /// and before looking at what the wakers left (see the type's contract).
    ///
    /// # Errors
    /// The kernel's; never `WouldBlock` (nothing to drain is fine).
    pub fn drain(&self) -> io::Result<()> {
        match &self.inner.object {
            #[cfg(tulip_epoll)]
            WakeObject::EventFd(fd) => {
                ignore_would_block(crate::fd::read(fd.as_fd(), &mut [0; 8]))?;
            }
            WakeObject::Pipe { read, .. } => {
                // Coalesced wakes leave one byte, but a full read means there may be more.
                let mut buf = [0u8; 64];
                while ignore_would_block(crate::fd::read(read.as_fd(), &mut buf))? == buf.len() {}
            }
            // EV_CLEAR reset the event when the kqueue delivered it.
            #[cfg(tulip_kqueue)]
            WakeObject::User { .. } => {}
        }
        self.inner.pending.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// A read's byte count, with "nothing to read" as 0.
fn ignore_would_block(r: io::Result<usize>) -> io::Result<usize> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        other => other,
    }
}

/// `Selector::notifier` for the backends that watch an fd: make an fd-based notifier and
/// register its fd for reading under `token`.
pub(crate) fn register_fd_notifier(
    selector: &mut dyn crate::Selector,
    token: crate::Token,
) -> io::Result<Notifier> {
    let notifier = Notifier::with_fd()?;
    let fd = notifier.fd().expect("an fd-based notifier has an fd");
    selector.register(fd, crate::Interest::READABLE, token)?;
    Ok(notifier)
}
