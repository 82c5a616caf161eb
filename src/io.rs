//! The loop's I/O callbacks: per fd, a reader and a writer sharing one selector registration.

use std::io;
use std::os::fd::RawFd;

use tulip_sys::fd::FdMap;
use tulip_sys::{Interest, Selector, Token};

use crate::ready::Direction;
use crate::slot::{PersistentCallback, Slot};

#[derive(Default)]
struct FdEntry {
    reader: Option<Slot>,
    writer: Option<Slot>,
}

impl FdEntry {
    fn interest(&self) -> Interest {
        let mut interest = Interest::empty();
        if self.reader.is_some() {
            interest |= Interest::READABLE;
        }
        if self.writer.is_some() {
            interest |= Interest::WRITABLE;
        }
        interest
    }

    fn slot(&mut self, direction: Direction) -> &mut Option<Slot> {
        match direction {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        }
    }
}

fn interest_of(direction: Direction) -> Interest {
    match direction {
        Direction::Read => Interest::READABLE,
        Direction::Write => Interest::WRITABLE,
    }
}

/// Readers and writers by fd. Events carry the fd as their token.
#[derive(Default)]
pub(crate) struct IoTable {
    fds: FdMap<FdEntry>,
}

impl IoTable {
    /// True if no reader or writer is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Register `callback` as `fd`'s reader or writer (replacing one there), telling the
    /// selector: `register` for a new fd, `modify` when the other direction is already there.
    /// Returns the replaced callback, for the caller to drop outside any borrow.
    pub(crate) fn add(
        &mut self,
        selector: &mut dyn Selector,
        fd: RawFd,
        direction: Direction,
        slot: Slot,
    ) -> io::Result<Option<PersistentCallback>> {
        let entry = self.fds.entry(fd).or_default();
        let old = entry.interest();
        let new = old | interest_of(direction);
        let result = if old.is_empty() {
            selector.register(fd, new, Token(fd as usize))
        } else if new != old {
            modify_or_register(selector, fd, new)
        } else {
            Ok(())
        };
        if let Err(e) = result {
            if old.is_empty() {
                self.fds.remove(&fd);
            }
            return Err(e);
        }
        let replaced = entry.slot(direction).replace(slot);
        Ok(replaced.and_then(Slot::into_callback))
    }

    /// Unregister `fd`'s reader or writer. Returns whether there was one, and its callback
    /// (unless it is running) for the caller to drop outside any borrow.
    pub(crate) fn remove(
        &mut self,
        selector: &mut dyn Selector,
        fd: RawFd,
        direction: Direction,
    ) -> (bool, Option<PersistentCallback>) {
        let Some(entry) = self.fds.get_mut(&fd) else {
            return (false, None);
        };
        let Some(slot) = entry.slot(direction).take() else {
            return (false, None);
        };
        let interest = entry.interest();
        if interest.is_empty() {
            self.fds.remove(&fd);
            // The selector forgets a closed fd by itself, and succeeds in unregistering it.
            let _ = selector.unregister(fd);
        } else if modify_or_register(selector, fd, interest).is_err() {
            // The fd was closed behind the loop's back: forget it entirely.
            let _ = selector.unregister(fd);
        }
        (true, slot.into_callback())
    }

    /// The slot an event for (`fd`, `direction`) would run, if one is registered.
    pub(crate) fn slot(&mut self, fd: RawFd, direction: Direction) -> Option<&mut Slot> {
        self.fds.get_mut(&fd)?.slot(direction).as_mut()
    }

    /// The generations of `fd`'s reader and writer.
    pub(crate) fn generations(&self, fd: RawFd) -> (Option<u64>, Option<u64>) {
        match self.fds.get(&fd) {
            Some(entry) => (
                entry.reader.as_ref().map(|s| s.generation),
                entry.writer.as_ref().map(|s| s.generation),
            ),
            None => (None, None),
        }
    }

    /// Take every callback out (for `close`; the selector is being dropped).
    pub(crate) fn drain(&mut self) -> Vec<PersistentCallback> {
        self.fds
            .drain()
            .flat_map(|(_, e)| [e.reader, e.writer])
            .flatten()
            .filter_map(Slot::into_callback)
            .collect()
    }
}

/// `modify`, or `register` if the selector forgot the fd (it was closed and its number reused
/// without `remove_reader`/`remove_writer` in between: epoll drops such fds by itself).
fn modify_or_register(
    selector: &mut dyn Selector,
    fd: RawFd,
    interest: Interest,
) -> io::Result<()> {
    match selector.modify(fd, interest, Token(fd as usize)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            selector.register(fd, interest, Token(fd as usize))
        }
        other => other,
    }
}
