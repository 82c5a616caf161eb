//! The loop's fd table: per watched fd, either a reader and a writer callback sharing one
//! selector registration (`add_reader` / `add_writer`), or an [`IoSource`] (the registration
//! under a socket or pipe type of `net`), which is told of each event and wakes the tasks
//! awaiting it.

use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use tulip_sys::fd::FdMap;
use tulip_sys::{Event, Interest, Selector, Token};

use super::ready_queue::Direction;
use super::slot::{PersistentCallback, Slot};
use crate::EventLoop;

/// An fd whose owner awaits it instead of handing the loop callbacks: the loop's whole view of
/// `net`'s sources. It registers through [`EventLoop::watch_source`] and its siblings, and the
/// loop tells it of each event for its fd.
pub(crate) trait IoSource {
    /// An event for the fd: wake whoever waits for what it reports (and, if nobody does,
    /// perhaps stop being watched for it, through the loop's `*_source` methods).
    fn on_event(&self, lp: &EventLoop, event: &Event);

    /// The loop is closing and no longer watches the fd.
    fn forget(&self);
}

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

/// What an event for an fd concerns.
pub(super) enum Watcher {
    /// The generations of its reader and writer callbacks.
    Callbacks(Option<u64>, Option<u64>),
    /// The source of a socket or pipe type.
    Source(Rc<dyn IoSource>),
}

/// Readers and writers by fd, and the sources. Events carry the fd as their token.
#[derive(Default)]
pub(super) struct FdTable {
    fds: FdMap<FdEntry>,
    /// Each with the interest it is watched for, to register it again after `fork`.
    sources: FdMap<(Rc<dyn IoSource>, Interest)>,
}

impl FdTable {
    /// True if no reader or writer is registered.
    pub(super) fn is_empty(&self) -> bool {
        self.fds.is_empty() && self.sources.is_empty()
    }

    /// Add the source of an fd about to be registered.
    ///
    /// # Errors
    /// `AlreadyExists` if the fd has a reader or writer callback, or another source.
    fn insert_source(
        &mut self,
        fd: RawFd,
        source: Rc<dyn IoSource>,
        interest: Interest,
    ) -> io::Result<()> {
        if self.fds.contains_key(fd) || self.sources.contains_key(fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already watched by this loop (a reader or writer callback, or another socket)"),
            ));
        }
        self.sources.insert(fd, (source, interest));
        Ok(())
    }

    /// Remove `source` if it is the one registered for `fd`; returns whether it was.
    fn remove_source(&mut self, fd: RawFd, source: &dyn IoSource) -> bool {
        match self.sources.get(fd) {
            Some((found, _)) if std::ptr::addr_eq(Rc::as_ptr(found), source) => {
                self.sources.remove(fd);
                true
            }
            _ => false,
        }
    }

    /// What an event for `fd` concerns.
    pub(super) fn watcher(&self, fd: RawFd) -> Watcher {
        if let Some((source, _)) = self.sources.get(fd) {
            return Watcher::Source(Rc::clone(source));
        }
        match self.fds.get(fd) {
            Some(entry) => Watcher::Callbacks(
                entry.reader.as_ref().map(|s| s.generation),
                entry.writer.as_ref().map(|s| s.generation),
            ),
            None => Watcher::Callbacks(None, None),
        }
    }

    /// Register `callback` as `fd`'s reader or writer (replacing one there), telling the
    /// selector: `register` for a new fd, `modify` when the other direction is already there.
    /// Returns the replaced callback, for the caller to drop outside any borrow.
    pub(super) fn add(
        &mut self,
        selector: &mut dyn Selector,
        fd: RawFd,
        direction: Direction,
        slot: Slot,
    ) -> io::Result<Option<PersistentCallback>> {
        if self.sources.contains_key(fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} belongs to a tulip socket or pipe awaited on this loop"),
            ));
        }
        let entry = self.fds.get_or_insert_with(fd, FdEntry::default);
        let old = entry.interest();
        let new = old | direction.interest();
        let result = if old.is_empty() {
            selector.register(fd, new, Token(fd as usize))
        } else if new != old {
            modify_or_register(selector, fd, new)
        } else {
            Ok(())
        };
        if let Err(e) = result {
            if old.is_empty() {
                self.fds.remove(fd);
            }
            return Err(e);
        }
        let replaced = entry.slot(direction).replace(slot);
        Ok(replaced.and_then(Slot::into_callback))
    }

    /// Unregister `fd`'s reader or writer. Returns whether there was one, and its callback
    /// (unless it is running) for the caller to drop outside any borrow. Without a selector
    /// (a loop inherited through `fork`, whose selector is the parent's), only the table
    /// forgets it.
    pub(super) fn remove(
        &mut self,
        selector: Option<&mut dyn Selector>,
        fd: RawFd,
        direction: Direction,
    ) -> (bool, Option<PersistentCallback>) {
        let Some(entry) = self.fds.get_mut(fd) else {
            return (false, None);
        };
        let Some(slot) = entry.slot(direction).take() else {
            return (false, None);
        };
        let interest = entry.interest();
        if interest.is_empty() {
            self.fds.remove(fd);
        }
        let Some(selector) = selector else {
            return (true, slot.into_callback());
        };
        if interest.is_empty() {
            // The selector forgets a closed fd by itself, and succeeds in unregistering it.
            let _ = selector.unregister(fd);
        } else if modify_or_register(selector, fd, interest).is_err() {
            // The fd was closed behind the loop's back: forget it entirely.
            let _ = selector.unregister(fd);
        }
        (true, slot.into_callback())
    }

    /// Register every watched fd with `selector` (a fresh one, after `fork`), each for the
    /// interest it has now, edge-triggered ones as they were.
    ///
    /// # Errors
    /// The first registration refused (`EBADF` for an fd closed behind the loop's back).
    pub(super) fn register_all(&self, selector: &mut dyn Selector) -> io::Result<()> {
        let callbacks = self.fds.iter().map(|(fd, entry)| (fd, entry.interest()));
        let sources = self
            .sources
            .iter()
            .map(|(fd, (_, interest))| (fd, *interest));
        for (fd, interest) in callbacks.chain(sources) {
            selector
                .register(fd, interest, Token(fd as usize))
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot watch fd {fd} again after fork: {e}"),
                    )
                })?;
        }
        Ok(())
    }

    /// The slot an event for (`fd`, `direction`) would run, if one is registered.
    pub(super) fn slot(&mut self, fd: RawFd, direction: Direction) -> Option<&mut Slot> {
        self.fds.get_mut(fd)?.slot(direction).as_mut()
    }

    /// Take every callback out (for `close`; the selector is being dropped).
    /// The sources are told they are no longer watched.
    pub(super) fn drain(&mut self) -> Vec<PersistentCallback> {
        for (_, (source, _)) in self.sources.drain() {
            source.forget();
        }
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

impl EventLoop {
    /// Register `fd`, owned by `source`, with the selector for `interest`.
    ///
    /// # Errors
    /// [`LoopError::Closed`](crate::LoopError::Closed); `AlreadyExists` if the fd has a reader or writer callback or
    /// another source on this loop; the selector's error.
    pub(crate) fn watch_source(
        &self,
        fd: RawFd,
        source: Rc<dyn IoSource>,
        interest: Interest,
    ) -> io::Result<()> {
        self.check_open()?;
        self.with_selector(|selector| {
            let mut fds = self.inner.fds.borrow_mut();
            fds.insert_source(fd, Rc::clone(&source), interest)?;
            if let Err(e) = selector.register(fd, interest, Token(fd as usize)) {
                fds.remove_source(fd, &*source);
                return Err(e);
            }
            Ok(())
        })
    }

    /// Watch a source's `fd` for `interest` instead of what it was registered for.
    ///
    /// # Errors
    /// [`LoopError::Closed`](crate::LoopError::Closed); the selector's error.
    pub(crate) fn rewatch_source(&self, fd: RawFd, interest: Interest) -> io::Result<()> {
        self.check_open()?;
        self.with_selector(|selector| selector.modify(fd, interest, Token(fd as usize)))?;
        if let Some((_, watched)) = self.inner.fds.borrow_mut().sources.get_mut(fd) {
            *watched = interest;
        }
        Ok(())
    }

    /// Stop watching `fd` if `source` is what this loop watches it for; returns whether it was.
    pub(crate) fn unwatch_source(&self, fd: RawFd, source: &dyn IoSource) -> bool {
        let mut selector = self.inner.selector.borrow_mut();
        let Some(selector) = selector.as_deref_mut() else {
            return false;
        };
        let removed = self.inner.fds.borrow_mut().remove_source(fd, source);
        // In a child that inherited the loop, the selector is the parent's: leave it alone.
        if removed && !self.is_forked() {
            // The selector forgets a closed fd by itself, and succeeds in unregistering it.
            let _ = selector.unregister(fd);
        }
        removed
    }

    /// Whether this loop's selector can watch an fd edge-triggered (`Interest::EDGE`).
    pub(crate) fn supports_edge(&self) -> bool {
        let selector = self.inner.selector.borrow();
        selector.as_deref().is_some_and(|s| s.supports_edge())
    }
}
