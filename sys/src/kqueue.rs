//! The kqueue backend (macOS, FreeBSD, NetBSD, OpenBSD, DragonFly): the interest list lives in
//! the kernel as (fd, filter) pairs, `EVFILT_READ` and `EVFILT_WRITE`, so `select` costs
//! O(ready fds).
//!
//! kqueue reports each filter separately; this backend merges the two into one [`Event`] per fd
//! (the contract promises at most one per fd per call). Registration changes are submitted with
//! `EV_RECEIPT`, which gives a result per change: if one of two changes fails, the one that took
//! effect is undone, so a failed `register` or `modify` leaves the kernel as it was. The kernel
//! drops an fd's filters when the fd is closed, so a closed fd is never reported again and
//! `unregister` then succeeds (its `ENOENT`/`EBADF` is the proof). The notifier is an
//! `EVFILT_USER` event on the kqueue itself: no fd at all.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use crate::registry::{Registered, Registry};
use crate::syscall::{cvt, retry_eintr, timespec};
use crate::{Backend, Event, Interest, Notifier, Ready, Registration, Selector, Token};

/// How many kernel events one `select` reads at most; the rest come with the next call.
const MAX_EVENTS: usize = 65_536;

// The field types of `struct kevent` differ between the BSDs.
#[cfg(target_os = "netbsd")]
type Filter = u32;
#[cfg(not(target_os = "netbsd"))]
type Filter = i16;
#[cfg(target_os = "netbsd")]
type Flags = u32;
#[cfg(not(target_os = "netbsd"))]
type Flags = u16;

/// A [`Selector`] over `kqueue(2)`. See the trait for the contract.
#[derive(Debug)]
pub struct KqueueSelector {
    /// Shared with this selector's notifiers, which trigger their user events on it.
    kq: Arc<OwnedFd>,
    registry: Registry<Slot>,
    /// The kernel writes ready events here.
    buffer: Vec<libc::kevent>,
    /// Incremented by each `select`, to merge the read and write events of one fd.
    epoch: u64,
    /// The `EVFILT_USER` idents of this selector's notifiers, with their tokens.
    user_events: Vec<(usize, Token)>,
    syscalls: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    registration: Registration,
    /// The `epoch` of the last `select` that reported this fd, and its event's index there.
    seen: u64,
    index: usize,
}

/// Add or delete one filter of an fd.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Change {
    Add(Filter),
    Delete(Filter),
}

impl Change {
    fn undo(self) -> Change {
        match self {
            Change::Add(f) => Change::Delete(f),
            Change::Delete(f) => Change::Add(f),
        }
    }
}

/// At most two changes (one per filter): what one registration call submits, without
/// allocating.
#[derive(Debug, Clone, Copy, Default)]
struct Changes {
    list: [Option<Change>; 2],
}

impl Changes {
    fn push(&mut self, change: Change) {
        let free = self.list.iter_mut().find(|c| c.is_none());
        *free.expect("at most one change per filter, and there are two filters") = Some(change);
    }

    fn iter(&self) -> impl Iterator<Item = Change> + '_ {
        self.list.iter().flatten().copied()
    }
}

impl FromIterator<Change> for Changes {
    fn from_iter<I: IntoIterator<Item = Change>>(iter: I) -> Changes {
        let mut changes = Changes::default();
        iter.into_iter().for_each(|c| changes.push(c));
        changes
    }
}

fn kevent(ident: usize, filter: Filter, flags: Flags, fflags: u32) -> libc::kevent {
    // SAFETY: `kevent` is a plain C struct of integers and a nullable pointer, for which all
    // zero bits are a valid value (and the fields a BSD adds, like FreeBSD's `ext`, must be 0).
    let mut kev: libc::kevent = unsafe { std::mem::zeroed() };
    kev.ident = ident;
    kev.filter = filter;
    kev.flags = flags;
    kev.fflags = fflags;
    kev
}

fn filters(interest: Interest) -> impl Iterator<Item = Filter> {
    let read = interest.is_readable().then_some(libc::EVFILT_READ);
    let write = interest.is_writable().then_some(libc::EVFILT_WRITE);
    read.into_iter().chain(write)
}

impl Registered for Slot {
    fn registration_mut(&mut self) -> &mut Registration {
        &mut self.registration
    }
}

impl KqueueSelector {
    /// A new kqueue (close-on-exec).
    ///
    /// # Errors
    /// The kernel's: `EMFILE`, `ENFILE`, `ENOMEM`.
    pub fn new() -> io::Result<KqueueSelector> {
        // SAFETY: kqueue takes no arguments.
        let fd = cvt(unsafe { libc::kqueue() })?;
        // SAFETY: the kernel just returned this fd to us; nothing else owns it.
        let kq = unsafe { OwnedFd::from_raw_fd(fd) };
        crate::fd::set_cloexec_on(kq.as_fd(), true)?;
        Ok(KqueueSelector {
            kq: Arc::new(kq),
            registry: Registry::new(),
            buffer: Vec::new(),
            epoch: 0,
            user_events: Vec::new(),
            syscalls: 0,
        })
    }

    /// Submit up to two changes for `fd` in one `kevent` call with `EV_RECEIPT`. If any fails,
    /// undo those that took effect and return the first error. Deleting a filter the kernel no
    /// longer has (`ENOENT`) counts as done. `existing` names the filters registered before this
    /// call: re-adding one of them (`EV_ADD` on an existing knote only modifies it) is not undone.
    fn apply(&mut self, fd: RawFd, changes: Changes, existing: Interest) -> io::Result<()> {
        let errnos = self.submit(fd, changes)?;
        let mut first_error = None;
        let mut undo = Changes::default();
        for (change, errno) in changes.iter().zip(errnos) {
            match (errno, change) {
                // A filter that was there before this call stays on rollback: re-adding it
                // only modified it (rolling back `modify(READABLE -> BOTH)` keeps READ).
                (0, Change::Add(f)) if existing_has(existing, f) => {}
                (0, _) => undo.push(change.undo()),
                // ENOENT: the filter was not there, so there is nothing to restore.
                (libc::ENOENT, Change::Delete(_)) => {}
                (errno, _) => {
                    first_error.get_or_insert(io::Error::from_raw_os_error(errno));
                }
            }
        }
        let Some(error) = first_error else {
            return Ok(());
        };
        // Best effort, and not rolled back in turn: undoing a change that just succeeded does
        // not fail in practice.
        let _ = self.submit(fd, undo);
        Err(error)
    }

    /// One `kevent` call with the changes, each with `EV_RECEIPT`; returns each change's errno
    /// (0 for success), in the order of `changes.iter()`.
    fn submit(&mut self, fd: RawFd, changes: Changes) -> io::Result<[i32; 2]> {
        let mut kevs = [kevent(0, 0, 0, 0); 2];
        let mut n = 0;
        for change in changes.iter() {
            let (filter, op) = match change {
                Change::Add(filter) => (filter, libc::EV_ADD),
                Change::Delete(filter) => (filter, libc::EV_DELETE),
            };
            kevs[n] = kevent(fd as usize, filter, op | libc::EV_RECEIPT, 0);
            n += 1;
        }
        let mut errnos = [0; 2];
        if n == 0 {
            return Ok(errnos);
        }
        let mut receipts = [kevent(0, 0, 0, 0); 2];
        self.syscalls += 1;
        // SAFETY: `kevs` holds `n` (<= 2) initialised changes and `receipts` has room for `n`
        // results; both outlive the call; the zero timeout makes it return at once.
        let got = cvt(unsafe {
            libc::kevent(
                self.kq.as_raw_fd(),
                kevs.as_ptr(),
                n as _,
                receipts.as_mut_ptr(),
                n as _,
                &ZERO,
            )
        })? as usize;
        // Match each receipt to its change by filter (the two changes never share one), and
        // count only entries with EV_ERROR as receipts. Every BSD returns receipts in
        // order, but a kernel without EV_RECEIPT (NetBSD 9) returns only the failed changes'
        // entries, then fills the rest of the list with pending events, which carry no
        // EV_ERROR and must not be read as "success of change i".
        for receipt in &receipts[..got.min(n)] {
            if receipt.flags & libc::EV_ERROR == 0 || receipt.ident != fd as usize {
                continue;
            }
            if let Some(i) = kevs[..n].iter().position(|k| k.filter == receipt.filter) {
                errnos[i] = receipt.data as i32;
            }
        }
        Ok(errnos)
    }
}

fn existing_has(existing: Interest, filter: Filter) -> bool {
    (filter == libc::EVFILT_READ && existing.is_readable())
        || (filter == libc::EVFILT_WRITE && existing.is_writable())
}

const ZERO: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

impl Selector for KqueueSelector {
    fn backend(&self) -> Backend {
        Backend::Kqueue
    }

    fn register(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        self.registry.check_new(fd, interest)?;
        self.apply(
            fd,
            filters(interest).map(Change::Add).collect(),
            Interest::empty(),
        )?;
        let registration = Registration { interest, token };
        self.registry.insert(
            fd,
            Slot {
                registration,
                seen: 0,
                index: 0,
            },
        );
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        let old = self
            .registry
            .check_existing(fd, interest)?
            .registration
            .interest;
        if self.registry.retoken_if_unchanged(fd, interest, token) {
            return Ok(());
        }
        // Re-add every wanted filter (EV_ADD on an existing one only modifies it), so that an fd
        // the kernel forgot (closed, number reused) is registered whole; delete the unwanted ones.
        let adds = filters(interest).map(Change::Add);
        let deletes = filters(old.remove(interest)).map(Change::Delete);
        self.apply(fd, adds.chain(deletes).collect(), old)?;
        let slot = self.registry.get_mut(fd).expect("checked above");
        slot.registration = Registration { interest, token };
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        let old = self.registry.check_registered(fd)?.registration.interest;
        match self.apply(fd, filters(old).map(Change::Delete).collect(), old) {
            // EBADF: the fd was closed, and the kernel dropped its filters with it.
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => {}
            Err(e) => return Err(e),
        }
        self.registry.remove(fd).map(drop)
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        let wanted = (2 * self.registry.len() + self.user_events.len()).clamp(1, MAX_EVENTS);
        if self.buffer.capacity() < wanted {
            self.buffer.reserve_exact(wanted - self.buffer.len());
        }
        let kq = self.kq.as_raw_fd();
        let capacity = self.buffer.capacity();
        let buf = self.buffer.as_mut_ptr();
        let syscalls = &mut self.syscalls;
        let n = retry_eintr(timeout, |t| {
            let ts = t.map(timespec);
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
            *syscalls += 1;
            // SAFETY: no changes are passed; `buf` has room for `capacity` events and is not
            // otherwise used during the call; `ts_ptr` is null or points to a live timespec.
            cvt(unsafe { libc::kevent(kq, std::ptr::null(), 0, buf, capacity as _, ts_ptr) })
        })? as usize;
        // SAFETY: the kernel initialised the first `n` entries (n <= capacity).
        unsafe { self.buffer.set_len(n) };
        self.epoch += 1;
        for kev in &self.buffer {
            if kev.filter == libc::EVFILT_USER {
                if let Some(&(_, token)) = self.user_events.iter().find(|(id, _)| *id == kev.ident)
                {
                    events.push(Event::new(token, Ready::READABLE));
                }
                continue;
            }
            // An fd unregistered since its event was queued: drop the event.
            let Some(slot) = self.registry.get_mut(kev.ident as RawFd) else {
                continue;
            };
            let eof = kev.flags & libc::EV_EOF != 0;
            let ready = Ready::from_conditions(
                slot.registration.interest,
                kev.filter == libc::EVFILT_READ,
                kev.filter == libc::EVFILT_WRITE,
                // With EV_EOF, fflags holds the socket's pending error, if any.
                kev.flags & libc::EV_ERROR != 0 || (eof && kev.fflags != 0),
                eof,
            );
            if slot.seen == self.epoch {
                let merged = events[slot.index].ready() | ready;
                events[slot.index] = Event::new(slot.registration.token, merged);
            } else {
                slot.seen = self.epoch;
                slot.index = events.len();
                events.push(Event::new(slot.registration.token, ready));
            }
        }
        self.buffer.clear();
        Ok(events.len())
    }

    fn len(&self) -> usize {
        self.registry.len()
    }

    fn registration(&self, fd: RawFd) -> Option<Registration> {
        self.registry.get(fd).map(|s| s.registration)
    }

    fn notifier(&mut self, token: Token) -> io::Result<Notifier> {
        let ident = self
            .user_events
            .iter()
            .map(|(id, _)| id + 1)
            .max()
            .unwrap_or(1);
        // EV_CLEAR: delivering the event resets it, so one trigger gives one event.
        let kev = kevent(ident, libc::EVFILT_USER, libc::EV_ADD | libc::EV_CLEAR, 0);
        self.syscalls += 1;
        // SAFETY: one initialised change, no event list; the zero timeout returns at once.
        let added = cvt(unsafe {
            libc::kevent(self.kq.as_raw_fd(), &kev, 1, std::ptr::null_mut(), 0, &ZERO)
        });
        match added {
            Ok(_) => {}
            // Kernels without EVFILT_USER (NetBSD 9, OpenBSD before 2025) refuse the filter with
            // EINVAL: fall back to a self-pipe registered here.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                return crate::notifier::register_fd_notifier(self, token);
            }
            Err(e) => return Err(e),
        }
        self.user_events.push((ident, token));
        Ok(Notifier::with_user_event(Arc::clone(&self.kq), ident))
    }

    fn syscalls(&self) -> u64 {
        self.syscalls
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.kq.as_raw_fd())
    }
}

/// Trigger the `EVFILT_USER` event `ident` of `kq`: the notifier's wake.
pub(crate) fn trigger_user_event(kq: &OwnedFd, ident: usize) -> io::Result<()> {
    let kev = kevent(ident, libc::EVFILT_USER, 0, libc::NOTE_TRIGGER);
    // SAFETY: one initialised change, no event list; the zero timeout returns at once. `kq` is
    // borrowed from an `Arc` the notifier holds, so it is open.
    cvt(unsafe { libc::kevent(kq.as_raw_fd(), &kev, 1, std::ptr::null_mut(), 0, &ZERO) }).map(drop)
}
