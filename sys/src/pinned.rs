//! [`PinnedFuture`]: a future kept in place beside a header, so that one shared allocation
//! (an `Rc` made with [`Rc::pin`](std::rc::Rc::pin)) can hold a task's coroutine and its
//! state together. tulip's tasks are made of it: the coroutine needs no `Box` of its own.
//!
//! Polling a future needs `Pin<&mut F>`; a shared allocation only gives `&`. The cell hands
//! out the `Pin<&mut F>` itself, for the length of one poll, and refuses a nested poll (or
//! drop) of the same future while one is under way, which is what makes the `&mut` unique.
//! Every method that reaches the future takes `self: Pin<&Self>`: the cell is `!Unpin`, so
//! once pinned it never moves again, nor does the future inside it, which is dropped in
//! place (by [`PinnedFuture::drop_future`] or by the cell's own drop) before its memory can
//! be reused: the guarantees `Pin` asks for.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomPinned;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Where the future is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// In the cell, not being polled or dropped.
    Present,
    /// Being polled right now: a nested poll or drop is refused.
    Polling,
    /// Being dropped right now: it counts as gone already, as a value taken out to be
    /// dropped would.
    Dropping,
    /// Dropped: the bytes are uninitialised.
    Empty,
}

/// What [`PinnedFuture::poll_future`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Polled<T> {
    /// The future returned `Poll::Ready` with this output; it stays in the cell until
    /// [`PinnedFuture::drop_future`] (so that the caller decides where its destructor runs).
    Ready(T),
    /// The future returned `Poll::Pending`.
    Pending,
    /// Not polled: the future is being polled already (a call from inside that poll).
    Busy,
    /// Not polled: the future was dropped, or is being dropped.
    Empty,
}

/// A header `H` (any state, shared freely) and a future `F` kept in place beside it.
pub struct PinnedFuture<H, F> {
    header: H,
    slot: Cell<Slot>,
    /// Initialised exactly while `slot` is `Present`, `Polling` or `Dropping`.
    future: UnsafeCell<MaybeUninit<F>>,
    _pinned: PhantomPinned,
}

impl<H, F> PinnedFuture<H, F> {
    /// A cell holding `header` and `future`; pin it (`Rc::pin`, `Box::pin`) to poll it.
    pub fn new(header: H, future: F) -> PinnedFuture<H, F> {
        PinnedFuture {
            header,
            slot: Cell::new(Slot::Present),
            future: UnsafeCell::new(MaybeUninit::new(future)),
            _pinned: PhantomPinned,
        }
    }

    /// The header.
    pub fn header(&self) -> &H {
        &self.header
    }

    /// True while the future is being polled (asked from inside that poll).
    pub fn is_busy(&self) -> bool {
        self.slot.get() == Slot::Polling
    }

    /// True until the future's drop begins.
    pub fn has_future(&self) -> bool {
        matches!(self.slot.get(), Slot::Present | Slot::Polling)
    }

    /// Drop the future where it is, now; false if there is none (dropped, or being dropped)
    /// or it is being polled (a call from inside its own poll), which leaves it as it is. A
    /// panic in its destructor propagates, and the future counts as dropped (as Rust counts a
    /// value whose `drop` panicked).
    pub fn drop_future(self: Pin<&Self>) -> bool {
        if self.slot.get() != Slot::Present {
            return false;
        }
        self.slot.set(Slot::Dropping);
        // Whatever the destructor does, the slot is empty afterwards: never dropped twice.
        let _empty = SetOnExit(&self.slot, Slot::Empty);
        // SAFETY: the slot was `Present`, so the future is initialised, and now `Dropping`, so
        // no other reference to it exists or can be made until this returns (every access
        // checks the slot first). It is dropped where it is, as `Pin` requires of a pinned value, and
        // the slot is marked `Empty` on every exit, so it is never touched again.
        unsafe { (*self.future.get()).assume_init_drop() };
        true
    }
}

impl<H, F: Future> PinnedFuture<H, F> {
    /// Poll the future once with `cx` (see [`Polled`]). If the poll panics, the panic
    /// propagates and the future stays in the cell, to be dropped later.
    pub fn poll_future(self: Pin<&Self>, cx: &mut Context<'_>) -> Polled<F::Output> {
        match self.slot.get() {
            Slot::Present => {}
            Slot::Polling => return Polled::Busy,
            Slot::Dropping | Slot::Empty => return Polled::Empty,
        }
        self.slot.set(Slot::Polling);
        let _present = SetOnExit(&self.slot, Slot::Present);
        // SAFETY: initialised (the slot was `Present`); this is the only reference to the
        // future while the slot is `Polling` (nested polls and drops are refused above and in
        // `drop_future`, and `&mut self` cannot coexist with this `Pin<&Self>`). The cell is
        // pinned (`self` is `Pin<&Self>` and the cell is `!Unpin`), so it never moves again,
        // and the future is dropped in place before the cell's memory is reused: pinning the
        // future is sound.
        let future = unsafe { Pin::new_unchecked((*self.future.get()).assume_init_mut()) };
        match future.poll(cx) {
            Poll::Ready(output) => Polled::Ready(output),
            Poll::Pending => Polled::Pending,
        }
    }
}

impl<H, F> Drop for PinnedFuture<H, F> {
    fn drop(&mut self) {
        // `Polling` and `Dropping` cannot be seen here: polls and drops end (or unwind)
        // before `&mut self` can exist.
        if self.slot.get() == Slot::Present {
            self.slot.set(Slot::Empty);
            // SAFETY: `Present` means initialised; `&mut self` is the only reference. The
            // future is dropped in place, before the cell's memory is released.
            unsafe { self.future.get_mut().assume_init_drop() };
        }
    }
}

impl<H: fmt::Debug, F> fmt::Debug for PinnedFuture<H, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedFuture")
            .field("header", &self.header)
            .field("slot", &self.slot.get())
            .finish()
    }
}

/// Sets a slot to a state when dropped: on return and on unwind alike.
struct SetOnExit<'a>(&'a Cell<Slot>, Slot);

impl Drop for SetOnExit<'_> {
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    struct Noop;

    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    /// Counts its polls and drops; ready at its `ready_at`th poll; holds a buffer so that a
    /// leak or a double drop shows under Miri.
    struct Probe {
        polls: Rc<Cell<u32>>,
        drops: Rc<Cell<u32>>,
        ready_at: u32,
        _buffer: Vec<u8>,
    }

    impl Future for Probe {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<u32> {
            self.polls.set(self.polls.get() + 1);
            if self.polls.get() >= self.ready_at {
                Poll::Ready(self.polls.get())
            } else {
                Poll::Pending
            }
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
        }
    }

    fn probe(ready_at: u32) -> (Probe, Rc<Cell<u32>>, Rc<Cell<u32>>) {
        let (polls, drops) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let p = Probe {
            polls: polls.clone(),
            drops: drops.clone(),
            ready_at,
            _buffer: vec![7; 32],
        };
        (p, polls, drops)
    }

    fn with_cx<T>(f: impl FnOnce(&mut Context<'_>) -> T) -> T {
        let waker = Waker::from(Arc::new(Noop));
        f(&mut Context::from_waker(&waker))
    }

    #[test]
    fn polls_until_ready_then_drops_the_future_once() {
        let (p, polls, drops) = probe(3);
        let cell = Rc::pin(PinnedFuture::new("header", p));
        assert_eq!(*cell.header(), "header");
        assert_eq!(with_cx(|cx| cell.as_ref().poll_future(cx)), Polled::Pending);
        assert_eq!(with_cx(|cx| cell.as_ref().poll_future(cx)), Polled::Pending);
        assert_eq!(
            with_cx(|cx| cell.as_ref().poll_future(cx)),
            Polled::Ready(3)
        );
        assert!(cell.has_future(), "kept until dropped");
        assert!(cell.as_ref().drop_future());
        assert_eq!(drops.get(), 1);
        assert!(!cell.has_future());
        assert!(!cell.as_ref().drop_future(), "nothing left to drop");
        assert_eq!(with_cx(|cx| cell.as_ref().poll_future(cx)), Polled::Empty);
        drop(cell);
        assert_eq!((polls.get(), drops.get()), (3, 1));
    }

    #[test]
    fn a_cell_dropped_with_its_future_drops_it_in_place() {
        let (p, _, drops) = probe(10);
        let cell = Box::pin(PinnedFuture::new((), p));
        assert_eq!(with_cx(|cx| cell.as_ref().poll_future(cx)), Polled::Pending);
        drop(cell);
        assert_eq!(drops.get(), 1);
        let (p, _, drops) = probe(10);
        drop(PinnedFuture::new((), p)); // never pinned nor polled
        assert_eq!(drops.get(), 1);
    }

    /// Where a test future finds its own cell.
    type OwnCell<F> = Rc<Cell<Option<Pin<Rc<PinnedFuture<(), F>>>>>>;

    /// A future that polls (and tries to drop) its own cell from inside its poll, through
    /// a reference the header keeps.
    struct Reentrant(OwnCell<Reentrant>);

    impl Future for Reentrant {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            let cell = self.0.take().expect("set before polling");
            assert!(cell.is_busy());
            assert_eq!(with_cx(|cx| cell.as_ref().poll_future(cx)), Polled::Busy);
            assert!(!cell.as_ref().drop_future(), "refused while polled");
            Poll::Ready(())
        }
    }

    #[test]
    fn a_nested_poll_or_drop_of_the_same_future_is_refused() {
        let slot = Rc::new(Cell::new(None));
        let cell = Rc::pin(PinnedFuture::new((), Reentrant(slot.clone())));
        slot.set(Some(cell.clone()));
        assert_eq!(
            with_cx(|cx| cell.as_ref().poll_future(cx)),
            Polled::Ready(())
        );
        assert!(!cell.is_busy());
        assert!(cell.as_ref().drop_future());
    }

    /// A future that looks at its own cell from its destructor.
    struct LooksWhenDropped(OwnCell<LooksWhenDropped>);

    impl Future for LooksWhenDropped {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }

    impl Drop for LooksWhenDropped {
        fn drop(&mut self) {
            let cell = self.0.take().expect("set before dropping");
            assert!(
                !cell.has_future() && !cell.is_busy(),
                "gone once its drop begins"
            );
            assert_eq!(with_cx(|cx| cell.as_ref().poll_future(cx)), Polled::Empty);
            assert!(!cell.as_ref().drop_future(), "not dropped twice");
        }
    }

    #[test]
    fn a_future_being_dropped_counts_as_gone() {
        let slot = Rc::new(Cell::new(None));
        let cell = Rc::pin(PinnedFuture::new((), LooksWhenDropped(slot.clone())));
        slot.set(Some(cell.clone()));
        assert!(cell.as_ref().drop_future());
        assert!(!cell.has_future());
    }

    struct Panics {
        in_poll: bool,
        drops: Rc<Cell<u32>>,
    }

    impl Future for Panics {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            if self.in_poll {
                panic!("poll");
            }
            Poll::Pending
        }
    }

    impl Drop for Panics {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
            if !self.in_poll {
                panic!("drop");
            }
        }
    }

    #[test]
    fn a_panicking_poll_leaves_the_future_to_drop_and_a_panicking_drop_empties_the_slot() {
        let drops = Rc::new(Cell::new(0));
        let cell = Rc::pin(PinnedFuture::new(
            (),
            Panics {
                in_poll: true,
                drops: drops.clone(),
            },
        ));
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_cx(|cx| cell.as_ref().poll_future(cx))
        }));
        assert!(polled.is_err());
        assert!(!cell.is_busy() && cell.has_future());
        assert!(cell.as_ref().drop_future());
        assert_eq!(drops.get(), 1);

        let cell = Rc::pin(PinnedFuture::new(
            (),
            Panics {
                in_poll: false,
                drops: drops.clone(),
            },
        ));
        let dropped =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cell.as_ref().drop_future()));
        assert!(dropped.is_err());
        assert!(!cell.has_future(), "counts as dropped");
        drop(cell);
        assert_eq!(drops.get(), 2, "never dropped twice");
    }
}
