//! Tulip's `Future`: a result that will exist later, set by whoever holds the future
//! (`set_result`, `set_exception`, `cancel`), observed through done callbacks or `.await`.
//!
//! As in asyncio, done callbacks never run inside the call that completes the future: each is
//! scheduled with `call_soon`, in registration order, so completing a future is cheap and
//! cannot re-enter its caller. Coroutines awaiting it are woken through their `Waker`.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future as StdFuture;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::cancel_scope;
use super::output::Judge;
use crate::event_loop::WeakLoop;
use crate::{EventLoop, ExceptionContext, LoopError};

/// A done callback, as registered.
type DoneCallback<T> = Box<dyn FnOnce(&Future<T>)>;

/// Identifies one registration of a done callback, for [`Future::remove_done_callback`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

/// What makes two done callbacks "the same callback", as Python compares functions: the same
/// function item or non-capturing closure (a zero-sized type: its type is its code), or the
/// same function pointer. A closure that captures values has no identity to compare; it is
/// removed by its [`CallbackId`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Identity {
    Type(TypeId),
    Pointer(usize),
}

impl Identity {
    fn of<T: 'static, F: FnOnce(&Future<T>) + 'static>(callback: &F) -> Option<Identity> {
        if std::mem::size_of::<F>() == 0 {
            return Some(Identity::Type(TypeId::of::<F>()));
        }
        let any: &dyn Any = callback;
        any.downcast_ref::<fn(&Future<T>)>()
            .map(|f| Identity::Pointer(*f as usize))
    }
}

/// Which done callbacks [`Future::remove_done_callback`] removes: one registration (a
/// [`CallbackId`]), or every registration of a callback (a function, a non-capturing closure or
/// a function pointer: the same function item or non-capturing closure, or the same function
/// pointer).
pub trait DoneCallbackKey<T>: sealed::Sealed<T> {
    /// Whether the registration `id` of a callback with `identity` is one to remove.
    #[doc(hidden)]
    fn matches(&self, id: CallbackId, identity: Option<&dyn Any>) -> bool;
}

mod sealed {
    pub trait Sealed<T> {}
    impl<T> Sealed<T> for super::CallbackId {}
    impl<T: 'static, F: FnOnce(&super::Future<T>) + 'static> Sealed<T> for F {}
}

impl<T> DoneCallbackKey<T> for CallbackId {
    fn matches(&self, id: CallbackId, _identity: Option<&dyn Any>) -> bool {
        *self == id
    }
}

impl<T: 'static, F: FnOnce(&Future<T>) + 'static> DoneCallbackKey<T> for F {
    fn matches(&self, _id: CallbackId, identity: Option<&dyn Any>) -> bool {
        let ours = Identity::of::<T, F>(self);
        let theirs = identity.and_then(|i| i.downcast_ref::<Identity>());
        ours.is_some() && ours.as_ref() == theirs
    }
}

/// What a future rarely has, boxed apart from its state: the done callbacks not scheduled
/// yet, the next registration's id, and a task's given name.
struct Callbacks<T> {
    pending: Vec<Registration<T>>,
    next_id: u64,
    name: Option<String>,
}

impl<T> Callbacks<T> {
    fn new() -> Box<Callbacks<T>> {
        Box::new(Callbacks {
            pending: Vec::new(),
            next_id: 0,
            name: None,
        })
    }
}

/// A registered done callback.
struct Registration<T> {
    id: CallbackId,
    identity: Option<Identity>,
    callback: DoneCallback<T>,
}

thread_local! {
    /// How many futures of this thread have been cancelled: a future becomes cancelled only
    /// here, in `complete`. Lets whoever keeps futures to look after (the io_uring engine,
    /// whose requests are cancelled with their future) look again only when this moved.
    static CANCELLATIONS: Cell<u64> = const { Cell::new(0) };
}

/// How many futures this thread has cancelled so far (wrapping): when it has not changed,
/// no future has become cancelled since.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn cancellations() -> u64 {
    CANCELLATIONS.get()
}

/// A result that will be set later: Tulip's and asyncio's `Future`, made by
/// [`EventLoop::create_future`].
///
/// A `Future` is a cheap handle (clones share one state) and belongs to its loop's thread. Its
/// outcome is a value (`set_result`), an error (`set_exception`, any [`io::Error`]), or
/// cancellation. `.await` on it suspends the awaiting coroutine until then and gives the
/// outcome as `io::Result<T>`: the value moves out to that awaiter, so a second consumer gets
/// [`LoopError::InvalidState`] (use [`result`](Future::result) with `T: Clone` to read it more
/// than once). A cancelled future gives [`LoopError::Cancelled`].
///
/// ```
/// use tulip::EventLoop;
///
/// let lp = EventLoop::new()?;
/// let fut = lp.create_future::<u32>();
/// let setter = fut.clone();
/// lp.call_soon(move |_| setter.set_result(42).unwrap())?;
/// assert_eq!(lp.run_until_complete(fut)??, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Future<T> {
    inner: Pin<Rc<dyn Completion<T>>>,
    /// The waker of the coroutine awaiting this handle, while its last poll was `Pending`: a
    /// coroutine is then suspended on it, so cancelling that coroutine cancels this future too
    /// (see `cancel_scope.rs`). Freed when the handle is ready or dropped.
    awaiter: WakerSlot,
}

/// One registration of a waker with a future, owned by whoever waits (an awaiting handle, a
/// [`wait`](crate::wait), a [`shield`](crate::shield)), who frees it on ending the wait. So a
/// future waited for again and again by waiters that go away (repeated time-outs) holds only
/// the wakers of those still waiting, and a poll finds its own entry without a search.
#[derive(Debug, Default)]
pub struct WakerSlot(Cell<Option<usize>>);

impl WakerSlot {
    fn is_taken(&self) -> bool {
        self.0.get().is_some()
    }
}

/// The wakers waiting for a future: a slab of entries, one per [`WakerSlot`] in use, plus one
/// per distinct waker registered by [`Future::wake_when_done`] (which has no slot to free).
/// One waiter, by far the usual case (the coroutine that awaits), is kept inline, as entry 0,
/// with no allocation; a second one moves both into a boxed `Vec` (a thin pointer, so that the
/// state keeps them in 16 bytes: see [`PackedWakers`]).
#[derive(Default)]
#[allow(clippy::box_collection)]
enum Wakers {
    #[default]
    Empty,
    /// Entry 0, the only one: a [`WaitEntry::Owned`].
    Owned(Waker),
    /// Entry 0, the only one: a [`WaitEntry::Watcher`].
    Watcher(Waker),
    Many(Box<Vec<WaitEntry>>),
}

/// [`Wakers`] as a future's state keeps them: 16 bytes, the kind of a single entry kept
/// apart (`State::one_is_watcher`, in the state's padding), so that a task's allocation
/// stays in a smaller malloc size class (`None` for no entry: with only two variants, the
/// second fits beside the `Waker`'s niche).
#[allow(clippy::box_collection)]
enum PackedWakers {
    One(Waker),
    Other(Option<Box<Vec<WaitEntry>>>),
}

impl Default for PackedWakers {
    fn default() -> Self {
        PackedWakers::Other(None)
    }
}

enum WaitEntry {
    Free,
    /// Owned by a [`WakerSlot`], which frees it.
    Owned(Waker),
    /// Registered by `wake_when_done`: kept until completion.
    Watcher(Waker),
}

impl Wakers {
    /// Keep `waker` in `slot`'s entry, taking one if it has none.
    fn put(&mut self, slot: &WakerSlot, waker: &Waker) {
        if let (None, Wakers::Empty) = (slot.0.get(), &*self) {
            // The usual first wait: straight into the inline entry.
            *self = Wakers::Owned(waker.clone());
            slot.0.set(Some(0));
            return;
        }
        let kept = match (slot.0.get(), &mut *self) {
            (Some(0), Wakers::Owned(kept)) => Some(kept),
            (Some(i), Wakers::Many(entries)) => match entries.get_mut(i) {
                Some(WaitEntry::Owned(kept)) => Some(kept),
                _ => None,
            },
            _ => None,
        };
        if let Some(kept) = kept {
            if !kept.will_wake(waker) {
                *kept = waker.clone();
            }
            return;
        }
        let i = self.add(WaitEntry::Owned(waker.clone()));
        slot.0.set(Some(i));
    }

    /// Keep `waker` until completion, once per distinct waker.
    fn watch(&mut self, waker: &Waker) {
        let known = match self {
            Wakers::Empty | Wakers::Owned(_) => false,
            Wakers::Watcher(w) => w.will_wake(waker),
            Wakers::Many(entries) => entries
                .iter()
                .any(|e| matches!(e, WaitEntry::Watcher(w) if w.will_wake(waker))),
        };
        if !known {
            self.add(WaitEntry::Watcher(waker.clone()));
        }
    }

    /// Put `entry` in a free entry (the Vec stays as long as the most waiters at once), and
    /// return its index.
    fn add(&mut self, entry: WaitEntry) -> usize {
        match std::mem::take(self) {
            Wakers::Empty => {
                *self = match entry {
                    WaitEntry::Owned(w) => Wakers::Owned(w),
                    WaitEntry::Watcher(w) => Wakers::Watcher(w),
                    WaitEntry::Free => Wakers::Empty,
                };
                0
            }
            Wakers::Owned(w) => {
                *self = Wakers::Many(Box::new(vec![WaitEntry::Owned(w), entry]));
                1
            }
            Wakers::Watcher(w) => {
                *self = Wakers::Many(Box::new(vec![WaitEntry::Watcher(w), entry]));
                1
            }
            Wakers::Many(mut entries) => {
                let i = match entries.iter().position(|e| matches!(e, WaitEntry::Free)) {
                    Some(i) => {
                        entries[i] = entry;
                        i
                    }
                    None => {
                        entries.push(entry);
                        entries.len() - 1
                    }
                };
                *self = Wakers::Many(entries);
                i
            }
        }
    }

    /// Free `slot`'s entry, if it has one here.
    fn release(&mut self, slot: &WakerSlot) {
        let Some(i) = slot.0.take() else {
            return;
        };
        match self {
            Wakers::Owned(_) if i == 0 => *self = Wakers::Empty,
            Wakers::Many(entries) => {
                if let Some(entry @ WaitEntry::Owned(_)) = entries.get_mut(i) {
                    *entry = WaitEntry::Free;
                }
                while matches!(entries.last(), Some(WaitEntry::Free)) {
                    entries.pop();
                }
            }
            _ => {}
        }
    }

    /// Wake every waiter; none, the usual case of a task nobody awaits yet, is one test
    /// inline.
    #[inline]
    fn wake_all(self) {
        match self {
            Wakers::Empty => {}
            wakers => wakers.wake_each(),
        }
    }

    #[inline(never)]
    fn wake_each(self) {
        match self {
            Wakers::Empty => {}
            Wakers::Owned(w) | Wakers::Watcher(w) => w.wake(),
            Wakers::Many(entries) => {
                for entry in *entries {
                    if let WaitEntry::Owned(w) | WaitEntry::Watcher(w) = entry {
                        w.wake();
                    }
                }
            }
        }
    }
}

/// What holds a future's state: a [`FutureCell`] of its own, or a task, which keeps its output
/// in the same allocation as its coroutine (one allocation fewer per task).
pub(crate) trait Completion<T> {
    fn cell(&self) -> &FutureCell<T>;

    /// Take the outcome out as `Box<io::Result<T>>`, type-erased: for `Drop`, which has no
    /// `'static` bound to name it with (see `cancel_scope.rs`).
    fn take_any(&self) -> Box<dyn Any>;

    /// Cancel what holds the state, for `Drop` (as `take_any`): a future is cancelled, a task
    /// asked to cancel.
    fn cancel_erased(self: Pin<Rc<Self>>);
}

/// [`Completion::take_any`] for every holder.
pub(crate) fn take_boxed<T: 'static>(cell: &FutureCell<T>) -> Box<dyn Any> {
    Box::new(take(cell))
}

/// Move the outcome out of `cell`, marking it retrieved.
fn take<T>(cell: &FutureCell<T>) -> io::Result<T> {
    take_from(&mut cell.state.borrow_mut())
}

/// [`take`] from a borrowed state.
fn take_from<T>(state: &mut State<T>) -> io::Result<T> {
    // As asyncio's `result()`: reading a pending future retrieves nothing.
    state.retrieved |= !matches!(state.outcome, Outcome::Pending);
    match std::mem::replace(&mut state.outcome, Outcome::Taken) {
        Outcome::Done(result) => result,
        Outcome::Cancelled => {
            state.outcome = Outcome::Cancelled;
            Err(LoopError::Cancelled.into())
        }
        Outcome::Pending => {
            state.outcome = Outcome::Pending;
            Err(LoopError::InvalidState.into())
        }
        Outcome::Taken => Err(LoopError::InvalidState.into()),
    }
}

/// A future's state, and the loop its done callbacks are scheduled on.
pub(crate) struct FutureCell<T> {
    state: RefCell<State<T>>,
    /// Where done callbacks are scheduled. Weak: a future kept past its loop keeps nothing
    /// alive (its callbacks are then dropped unrun).
    lp: WeakLoop,
    /// How a value is judged, for a future whose value may be a failure (a task's output).
    judge: Option<Judge<T>>,
}

impl<T> FutureCell<T> {
    pub(crate) fn new(lp: WeakLoop) -> FutureCell<T> {
        FutureCell::judged(lp, None)
    }

    /// A cell whose value is judged a failure or not by `judge` (a task's output).
    pub(crate) fn judged(lp: WeakLoop, judge: Option<Judge<T>>) -> FutureCell<T> {
        FutureCell {
            state: RefCell::new(State {
                outcome: Outcome::Pending,
                callbacks: None,
                wakers: PackedWakers::Other(None),
                one_is_watcher: false,
                retrieved: false,
            }),
            lp,
            judge,
        }
    }

    /// True once the outcome is set (for code that holds the cell, not a `Future`).
    pub(crate) fn is_done(&self) -> bool {
        !matches!(self.state.borrow().outcome, Outcome::Pending)
    }

    /// True once cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        matches!(self.state.borrow().outcome, Outcome::Cancelled)
    }

    /// True if `value` is a failure its judge reads as [`LoopError::Cancelled`]: a task's
    /// coroutine that returned `Err(Cancelled)`, as a `CancelledError` escaping a coroutine.
    pub(crate) fn is_cancellation(&self, value: &T) -> bool {
        self.judge.is_some_and(|judge| {
            judge.is_failure(value)
                && judge
                    .failure(value)
                    .is_some_and(|e| LoopError::of(&e) == Some(LoopError::Cancelled))
        })
    }

    /// The name given to the task whose output this is, if any.
    pub(crate) fn given_name(&self) -> Option<String> {
        let state = self.state.borrow();
        state.callbacks.as_ref().and_then(|c| c.name.clone())
    }

    /// Give the task whose output this is a name (kept with the rarely used part).
    pub(crate) fn set_given_name(&self, name: String) {
        let mut state = self.state.borrow_mut();
        state.callbacks.get_or_insert_with(Callbacks::new).name = Some(name);
    }

    /// The loop the cell's done callbacks are scheduled on.
    pub(crate) fn weak_loop(&self) -> &WeakLoop {
        &self.lp
    }

    /// The failure the outcome holds, as an error, if it is one: an error set with
    /// `set_exception`, or a value its judge calls a failure.
    fn failure(&self, outcome: &Outcome<T>) -> Option<io::Error> {
        match outcome {
            Outcome::Done(Err(e)) => Some(copy_error(e)),
            Outcome::Done(Ok(value)) => self.judge.and_then(|judge| judge.failure(value)),
            _ => None,
        }
    }
}

impl<T> FutureCell<T> {
    /// Store `outcome` if the future is pending (else `InvalidState`, the outcome dropped
    /// outside the borrow) and wake its awaiters; returns the done callbacks, for the caller
    /// to schedule with a `Future` handle of this cell.
    fn finish(&self, outcome: Outcome<T>) -> io::Result<Vec<Registration<T>>> {
        let (callbacks, wakers) = {
            let mut state = self.state.borrow_mut();
            if !matches!(state.outcome, Outcome::Pending) {
                drop(state);
                // The refused value is dropped outside the borrow, too.
                drop(outcome);
                return Err(LoopError::InvalidState.into());
            }
            if matches!(outcome, Outcome::Cancelled) {
                CANCELLATIONS.set(CANCELLATIONS.get().wrapping_add(1));
            }
            state.outcome = outcome;
            let callbacks = match state.callbacks.as_mut() {
                Some(callbacks) => std::mem::take(&mut callbacks.pending),
                None => Vec::new(),
            };
            (callbacks, state.take_wakers())
        };
        wakers.wake_all();
        Ok(callbacks)
    }
}

impl<T: 'static> FutureCell<T> {
    /// [`Future::set_result`] on this cell, for a task's step as its coroutine returns:
    /// `handle` makes the `Future` its done callbacks get, only if it has any (a handle made
    /// and dropped for nothing was a twentieth of a spawn's instructions).
    ///
    /// # Errors
    /// As [`Future::set_result`].
    pub(crate) fn set_result_with(
        &self,
        value: T,
        handle: impl FnOnce() -> Future<T>,
    ) -> io::Result<()> {
        let callbacks = self.finish(Outcome::Done(Ok(value)))?;
        if !callbacks.is_empty() {
            handle().schedule(callbacks);
        }
        Ok(())
    }
}

/// A future that failed and was dropped with nobody having read its error is reported to its
/// loop's exception handler, as asyncio logs "exception was never retrieved". Not reported: a
/// panic (the exception handler had it when it happened) and the loop's own closing.
impl<T> Drop for FutureCell<T> {
    /// Inline, the usual case: the outcome was read, nothing to report.
    #[inline]
    fn drop(&mut self) {
        if !self.state.borrow().retrieved {
            self.report_unretrieved();
        }
    }
}

impl<T> FutureCell<T> {
    /// "exception was never retrieved", if the unread outcome is a failure.
    #[inline(never)]
    fn report_unretrieved(&self) {
        let state = self.state.borrow();
        let failure = self.failure(&state.outcome);
        drop(state);
        let Some(error) = failure else {
            return;
        };
        if matches!(
            LoopError::of(&error),
            Some(LoopError::Panicked | LoopError::Closed)
        ) {
            return;
        }
        let what = match self.judge {
            Some(_) => "Task exception was never retrieved",
            None => "Future exception was never retrieved",
        };
        let context = ExceptionContext::from_error(what, error);
        match self.lp.upgrade() {
            Some(lp) if !lp.is_closed() => lp.call_exception_handler(&context),
            _ => eprintln!("tulip: {context}"),
        }
    }
}

impl<T: 'static> Completion<T> for FutureCell<T> {
    fn cell(&self) -> &FutureCell<T> {
        self
    }

    fn take_any(&self) -> Box<dyn Any> {
        take_boxed(self)
    }

    fn cancel_erased(self: Pin<Rc<Self>>) {
        Future::from_completion(self).cancel();
    }
}

struct State<T> {
    outcome: Outcome<T>,
    /// The done callbacks, boxed: rarely any for a task, and this state is in every task's
    /// allocation, which must stay small (see `executor.rs`). Made at the first registration.
    callbacks: Option<Box<Callbacks<T>>>,
    /// The coroutines waiting for this future.
    wakers: PackedWakers,
    /// Whether `wakers`' single entry is a [`WaitEntry::Watcher`].
    one_is_watcher: bool,
    /// Whether anyone read the outcome (an error read is not reported when dropped).
    retrieved: bool,
}

impl<T> State<T> {
    /// The wakers, taken out (left empty).
    fn take_wakers(&mut self) -> Wakers {
        let one_is_watcher = std::mem::take(&mut self.one_is_watcher);
        match std::mem::take(&mut self.wakers) {
            PackedWakers::Other(None) => Wakers::Empty,
            PackedWakers::One(w) if one_is_watcher => Wakers::Watcher(w),
            PackedWakers::One(w) => Wakers::Owned(w),
            PackedWakers::Other(Some(entries)) => Wakers::Many(entries),
        }
    }

    /// Change the wakers with `change`.
    fn with_wakers<R>(&mut self, change: impl FnOnce(&mut Wakers) -> R) -> R {
        let mut wakers = self.take_wakers();
        let result = change(&mut wakers);
        (self.wakers, self.one_is_watcher) = match wakers {
            Wakers::Empty => (PackedWakers::Other(None), false),
            Wakers::Owned(w) => (PackedWakers::One(w), false),
            Wakers::Watcher(w) => (PackedWakers::One(w), true),
            Wakers::Many(entries) => (PackedWakers::Other(Some(entries)), false),
        };
        result
    }

    /// How many wakers are registered.
    fn live_wakers(&self) -> usize {
        match &self.wakers {
            PackedWakers::Other(None) => 0,
            PackedWakers::One(_) => 1,
            PackedWakers::Other(Some(entries)) => {
                let used = |e: &&WaitEntry| !matches!(e, WaitEntry::Free);
                entries.iter().filter(used).count()
            }
        }
    }
}

enum Outcome<T> {
    Pending,
    Done(io::Result<T>),
    Cancelled,
    /// The value or error was moved out by an awaiter or `take_result`.
    Taken,
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        Future {
            inner: Pin::clone(&self.inner),
            awaiter: WakerSlot::default(),
        }
    }
}

/// Dropped by a coroutine being cancelled while it awaits this future (or dropped as the
/// subject of a timed-out [`wait_for`](crate::wait_for)): the future is cancelled too, as
/// asyncio's cancellation reaches the future a task awaits.
impl<T> Drop for Future<T> {
    /// Inline, the usual case: nobody awaited this handle and no cancellation is under way,
    /// so there is nothing to do (two tests, with no registers saved for the rest).
    #[inline]
    fn drop(&mut self) {
        if self.awaiter.is_taken() || cancel_scope::is_active() {
            self.drop_awaited_or_cancelling();
        }
    }
}

impl<T> Future<T> {
    #[inline(never)]
    fn drop_awaited_or_cancelling(&mut self) {
        let awaited = self.awaiter.is_taken();
        if awaited {
            self.unwatch(&self.awaiter);
        }
        if !cancel_scope::is_active() {
            if awaited && cancel_scope::is_retrieving() {
                self.state().borrow_mut().retrieved = true;
            }
            return;
        }
        let target = cancel_scope::is_target(self);
        if target && self.done_any() {
            cancel_scope::give(self.inner.take_any());
        } else if target || awaited {
            Pin::clone(&self.inner).cancel_erased();
        }
    }
}

impl<T: 'static> Future<T> {
    pub(crate) fn new(lp: &EventLoop) -> Future<T> {
        Future::from_completion(Rc::pin(FutureCell::new(lp.downgrade())))
    }

    /// A future of no loop, already failed with `error`: what a call that needs a loop
    /// returns when there is none to make its future on.
    pub(crate) fn failed(error: io::Error) -> Future<T> {
        let future = Future::from_completion(Rc::pin(FutureCell::new(WeakLoop::default())));
        let _ = future.set_exception(error);
        future
    }

    /// The future whose state `holder` keeps (a task's output).
    pub(crate) fn from_completion(holder: Pin<Rc<dyn Completion<T>>>) -> Future<T> {
        Future {
            inner: holder,
            awaiter: WakerSlot::default(),
        }
    }

    /// True once the future has a result, an error, or was cancelled.
    pub fn done(&self) -> bool {
        !matches!(self.state().borrow().outcome, Outcome::Pending)
    }

    /// True if the future was cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(self.state().borrow().outcome, Outcome::Cancelled)
    }

    /// Complete the future with `value`: schedules the done callbacks and wakes the awaiters.
    ///
    /// # Errors
    /// [`LoopError::InvalidState`] if it is already done (the value is dropped).
    pub fn set_result(&self, value: T) -> io::Result<()> {
        self.complete(Outcome::Done(Ok(value)))
    }

    /// Complete the future with an error: what its awaiters get instead of a value.
    ///
    /// # Errors
    /// [`LoopError::InvalidState`] if it is already done.
    pub fn set_exception(&self, error: io::Error) -> io::Result<()> {
        self.complete(Outcome::Done(Err(error)))
    }

    /// Cancel the future: if it is pending, it becomes cancelled (its awaiters get
    /// [`LoopError::Cancelled`]), its done callbacks are scheduled, and this returns true;
    /// otherwise nothing changes and this returns false.
    pub fn cancel(&self) -> bool {
        self.complete(Outcome::Cancelled).is_ok()
    }

    /// Take the outcome out: the value, the error, or [`LoopError::Cancelled`].
    ///
    /// # Errors
    /// The future's error; [`LoopError::Cancelled`]; [`LoopError::InvalidState`] while pending
    /// or once the outcome was taken.
    pub fn take_result(&self) -> io::Result<T> {
        take(self.inner.cell())
    }

    /// Add `callback`, to be scheduled (with `call_soon`) once the future is done, after those
    /// added before it. If the future is already done it is scheduled at once.
    pub fn add_done_callback<F: FnOnce(&Future<T>) + 'static>(&self, callback: F) -> CallbackId {
        let identity = Identity::of::<T, F>(&callback);
        let mut guard = self.state().borrow_mut();
        let state = &mut *guard;
        let callbacks = state.callbacks.get_or_insert_with(Callbacks::new);
        let id = CallbackId(callbacks.next_id);
        callbacks.next_id += 1;
        let registration = Registration {
            id,
            identity,
            callback: Box::new(callback),
        };
        if matches!(state.outcome, Outcome::Pending) {
            callbacks.pending.push(registration);
        } else {
            drop(guard);
            self.schedule(vec![registration]);
        }
        id
    }

    /// Remove done callbacks not scheduled yet, and return how many were removed: the one
    /// registration a [`CallbackId`] names, or every registration of the same callback (as
    /// asyncio's `remove_done_callback` does), for a function, a non-capturing closure or a
    /// function pointer. A closure that captures values has no identity to compare: pass the
    /// `CallbackId` its registration returned.
    ///
    /// ```
    /// fn log(_: &tulip::Future<u8>) {}
    ///
    /// let lp = tulip::EventLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// fut.add_done_callback(log);
    /// let id = fut.add_done_callback(|_| {});
    /// fut.add_done_callback(log);
    /// assert_eq!(fut.remove_done_callback(log), 2);
    /// assert_eq!(fut.remove_done_callback(id), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn remove_done_callback(&self, which: impl DoneCallbackKey<T>) -> usize {
        let removed: Vec<Registration<T>> = {
            let mut state = self.state().borrow_mut();
            let Some(callbacks) = state.callbacks.as_mut() else {
                return 0;
            };
            let (removed, kept) = std::mem::take(&mut callbacks.pending)
                .into_iter()
                .partition(|r| {
                    let identity = r.identity.as_ref().map(|i| i as &dyn Any);
                    which.matches(r.id, identity)
                });
            callbacks.pending = kept;
            removed
        };
        // Dropped outside the borrow: a closure's captures may run code in their `Drop`.
        removed.len()
    }

    /// The future's error without taking it: `None` if it has a value, the error (a copy) if
    /// it failed (for a task: also an output its [`TaskOutput`](crate::TaskOutput) calls a
    /// failure). Reading it counts as retrieving it (no "never retrieved" report).
    ///
    /// # Errors
    /// [`LoopError::Cancelled`] once cancelled; [`LoopError::InvalidState`] while pending or
    /// once the outcome was taken.
    pub fn exception(&self) -> io::Result<Option<io::Error>> {
        let mut state = self.state().borrow_mut();
        match &state.outcome {
            Outcome::Pending | Outcome::Taken => Err(LoopError::InvalidState.into()),
            Outcome::Cancelled => Err(LoopError::Cancelled.into()),
            Outcome::Done(_) => {
                state.retrieved = true;
                Ok(self.inner.cell().failure(&state.outcome))
            }
        }
    }

    fn complete(&self, outcome: Outcome<T>) -> io::Result<()> {
        let callbacks = self.inner.cell().finish(outcome)?;
        if !callbacks.is_empty() {
            self.schedule(callbacks);
        }
        Ok(())
    }

    /// Schedule done callbacks on the loop, in order. A closed or dropped loop drops them.
    fn schedule(&self, callbacks: Vec<Registration<T>>) {
        let Some(lp) = self.inner.cell().lp.upgrade() else {
            return;
        };
        for Registration { callback, .. } in callbacks {
            let fut = self.clone();
            // Err: the loop is closed; the callback is dropped, as asyncio drops them.
            let _ = lp.call_soon(move |_| callback(&fut));
        }
    }

    /// Poll for the outcome on behalf of an awaiter (`.await`, `gather`), noting whether it
    /// now waits for it.
    pub(crate) fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.poll_for(cx, false)
    }

    /// `poll_outcome` for a user's `.await`: a pending future awaited by a coroutine of
    /// another loop than its own fails with [`LoopError::OtherLoop`] rather than waiting for a
    /// wake-up that its loop, not running, can never give (asyncio's RuntimeError "attached
    /// to a different loop"). Polled with no loop running (another executor), it just waits.
    pub(crate) fn poll_awaited(&self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.poll_for(cx, true)
    }

    /// Both of the above in one borrow of the state; the loop is checked only on the pending
    /// path, where the awaiter would otherwise be registered.
    fn poll_for(&self, cx: &mut Context<'_>, check_loop: bool) -> Poll<io::Result<T>> {
        let mut state = self.state().borrow_mut();
        if matches!(state.outcome, Outcome::Pending) {
            if check_loop && crate::event_loop::runs_another_loop(&self.inner.cell().lp) {
                return Poll::Ready(Err(LoopError::OtherLoop.into()));
            }
            state.with_wakers(|w| w.put(&self.awaiter, cx.waker()));
            return Poll::Pending;
        }
        // Completion took the wakers: whatever the slot named is gone.
        self.awaiter.0.set(None);
        Poll::Ready(take_from(&mut state))
    }

    /// Register `waker` to be woken when the future is done, without taking its outcome. For a
    /// waiter that cannot free its registration; those that can use [`watch`](Self::watch).
    pub(crate) fn wake_when_done(&self, waker: &Waker) {
        let mut state = self.state().borrow_mut();
        if matches!(state.outcome, Outcome::Pending) {
            state.with_wakers(|w| w.watch(waker));
        } else {
            drop(state);
            waker.wake_by_ref();
        }
    }

    /// True if the future ended with an error (not a value, not cancellation), or with a
    /// value its judge calls a failure (a task's `Err` output).
    pub(crate) fn is_error(&self) -> bool {
        match &self.state().borrow().outcome {
            Outcome::Done(Err(_)) => true,
            Outcome::Done(Ok(value)) => {
                let judge = self.inner.cell().judge;
                judge.is_some_and(|judge| judge.is_failure(value))
            }
            _ => false,
        }
    }
}

/// What `Drop` (here and a task's) can do without the `'static` bound of the other methods.
impl<T> Future<T> {
    fn state(&self) -> &RefCell<State<T>> {
        &self.inner.cell().state
    }

    pub(crate) fn done_any(&self) -> bool {
        !matches!(self.inner.cell().state.borrow().outcome, Outcome::Pending)
    }

    /// The outcome, moved out and type-erased as `Box<io::Result<T>>`.
    pub(crate) fn take_erased(&self) -> Box<dyn Any> {
        self.inner.take_any()
    }

    /// Whether a coroutine is suspended awaiting this handle; it no longer stands for one
    /// after this (its task handles the cancellation itself).
    pub(crate) fn take_awaiting(&self) -> bool {
        let awaited = self.awaiter.is_taken();
        self.unwatch(&self.awaiter);
        awaited
    }

    /// True if the future is done (and `slot` freed); otherwise `waker` is kept in `slot`,
    /// to be woken when it is.
    pub(crate) fn watch(&self, slot: &WakerSlot, waker: &Waker) -> bool {
        let mut state = self.state().borrow_mut();
        if matches!(state.outcome, Outcome::Pending) {
            state.with_wakers(|w| w.put(slot, waker));
            return false;
        }
        // Completion took the wakers: whatever the slot named is gone.
        slot.0.set(None);
        true
    }

    /// Free `slot`: its waiter no longer waits. (A handle dropped while the state is borrowed,
    /// by a destructor run inside a future's own method, keeps its entry until completion.)
    pub(crate) fn unwatch(&self, slot: &WakerSlot) {
        match self.state().try_borrow_mut() {
            Ok(mut state) => state.with_wakers(|w| w.release(slot)),
            Err(_) => drop(slot.0.take()),
        }
    }

    /// How many waiters are registered: for `Debug`, and for tests that check the count stays
    /// bounded.
    fn waiters(&self) -> usize {
        self.state().borrow().live_wakers()
    }
}

impl<T: Clone + 'static> Future<T> {
    /// The value, leaving it in place for other readers.
    ///
    /// # Errors
    /// [`LoopError::InvalidState`] while pending (or once an awaiter took the outcome),
    /// [`LoopError::Cancelled`] once cancelled, and a copy of the future's error if it has one
    /// (the same `LoopError`, OS error code, or kind and message).
    pub fn result(&self) -> io::Result<T> {
        let mut state = self.state().borrow_mut();
        state.retrieved |= !matches!(state.outcome, Outcome::Pending);
        match &state.outcome {
            Outcome::Done(Ok(value)) => Ok(value.clone()),
            Outcome::Done(Err(e)) => Err(copy_error(e)),
            Outcome::Cancelled => Err(LoopError::Cancelled.into()),
            Outcome::Pending | Outcome::Taken => Err(LoopError::InvalidState.into()),
        }
    }
}

/// A copy of `e` for another reader (an `io::Error` is not `Clone`): the same `LoopError`, or the
/// same OS error code, or else the same kind and message.
pub(crate) fn copy_error(e: &io::Error) -> io::Error {
    if let Some(loop_error) = LoopError::of(e) {
        return loop_error.into();
    }
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl<T: 'static> StdFuture for Future<T> {
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.poll_awaited(cx)
    }
}

impl<T: 'static> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state().borrow().outcome {
            Outcome::Pending => "pending",
            Outcome::Done(Ok(_)) => "finished",
            Outcome::Done(Err(_)) => "finished with an error",
            Outcome::Cancelled => "cancelled",
            Outcome::Taken => "finished (outcome taken)",
        };
        f.debug_struct("Future")
            .field("state", &state)
            .field("waiters", &self.waiters())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    //! The future's state machine alone, with no loop behind it (done callbacks are then
    //! dropped unrun): no system call, so these also run under Miri (`.ci/miri`).

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    fn detached<T: 'static>() -> Future<T> {
        Future::from_completion(Rc::pin(FutureCell::new(WeakLoop::default())))
    }

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn loop_error<T>(r: io::Result<T>) -> Option<LoopError> {
        r.err().as_ref().and_then(LoopError::of)
    }

    /// A future given the same watcher twice, and that watcher's counter: known as one
    /// watcher, registered once, not twice.
    fn watched_twice_by_one_waker() -> (Future<u8>, Arc<CountingWaker>, Waker) {
        let fut = detached::<u8>();
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        fut.wake_when_done(&waker);
        fut.wake_when_done(&waker);
        assert_eq!(fut.waiters(), 1);
        (fut, counter, waker)
    }

    #[test]
    fn one_waiter_is_kept_inline_in_no_more_than_a_waker() {
        assert!(std::mem::size_of::<PackedWakers>() <= std::mem::size_of::<Waker>());
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "will_wake is best-effort, and never true across clones under Miri"
    )]
    fn a_single_watcher_stays_a_watcher_in_the_packed_state() {
        let (fut, counter, waker) = watched_twice_by_one_waker();
        // An awaiter's slot released leaves the watcher in place.
        let handle = fut.clone();
        assert!(handle
            .poll_outcome(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(fut.waiters(), 2);
        drop(handle);
        assert_eq!(fut.waiters(), 1);
        fut.set_result(1).unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn cancelling_moves_the_cancellation_count_and_nothing_else_does() {
        let before = cancellations();
        let done = detached::<u8>();
        done.set_result(1).unwrap();
        assert!(!done.cancel());
        assert_eq!(cancellations(), before);
        let cancelled = detached::<u8>();
        assert!(cancelled.cancel());
        assert_eq!(cancellations(), before.wrapping_add(1));
    }

    #[test]
    fn waiters_move_from_inline_to_a_vec_and_back_keeping_their_entries() {
        let fut = detached::<u8>();
        let handles: Vec<_> = (0..3).map(|_| fut.clone()).collect();
        let counters: Vec<_> = (0..4).map(|_| Arc::new(CountingWaker::default())).collect();
        let wakers: Vec<Waker> = counters.iter().map(|c| Waker::from(c.clone())).collect();
        for (h, w) in handles.iter().zip(&wakers) {
            assert!(h.poll_outcome(&mut Context::from_waker(w)).is_pending());
        }
        fut.wake_when_done(&wakers[3]);
        assert_eq!(fut.waiters(), 4);
        // The second handle's newer waker replaces its own entry only.
        assert!(handles[1]
            .poll_outcome(&mut Context::from_waker(&wakers[0]))
            .is_pending());
        assert_eq!(fut.waiters(), 4);
        let mut handles = handles.into_iter();
        drop(handles.next());
        assert_eq!(fut.waiters(), 3);
        fut.set_result(7).unwrap();
        let woken: Vec<_> = counters
            .iter()
            .map(|c| c.0.load(Ordering::SeqCst))
            .collect();
        // The second handle now wakes through the first waker; the second waker was replaced.
        assert_eq!(woken, [1, 0, 1, 1]);
    }

    /// `Waker::will_wake` is best-effort: under Miri every use of a waker's vtable gets an
    /// address of its own, so the same waker is not recognised there (and is kept twice, which
    /// costs a second wake, never a lost one).
    #[test]
    #[cfg_attr(
        miri,
        ignore = "will_wake is best-effort, and never true across clones under Miri"
    )]
    fn the_same_watcher_is_kept_once_inline_and_in_a_vec() {
        let (fut, counter, waker) = watched_twice_by_one_waker();
        let other = Waker::from(Arc::new(CountingWaker::default()));
        fut.wake_when_done(&other);
        fut.wake_when_done(&waker);
        assert_eq!(fut.waiters(), 2);
        fut.set_result(1).unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_single_inline_waiter_is_freed_when_its_handle_goes() {
        let fut = detached::<u8>();
        let awaiting = fut.clone();
        let w = Arc::new(CountingWaker::default());
        let waker = Waker::from(w.clone());
        assert!(awaiting
            .poll_outcome(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(fut.waiters(), 1);
        drop(awaiting);
        assert_eq!(fut.waiters(), 0);
        fut.set_result(1).unwrap();
        assert_eq!(w.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_result_is_set_once_and_read_or_taken() {
        let fut = detached::<u32>();
        assert!(!fut.done());
        assert_eq!(loop_error(fut.result()), Some(LoopError::InvalidState));
        fut.set_result(5).unwrap();
        assert_eq!(loop_error(fut.set_result(6)), Some(LoopError::InvalidState));
        assert!(!fut.cancel());
        assert_eq!(fut.result().unwrap(), 5);
        assert_eq!(fut.take_result().unwrap(), 5);
        assert_eq!(loop_error(fut.take_result()), Some(LoopError::InvalidState));
    }

    #[test]
    fn cancelling_a_pending_future_makes_every_read_say_cancelled() {
        let fut = detached::<String>();
        assert!(fut.cancel());
        assert!(fut.cancelled() && fut.done());
        assert!(!fut.cancel());
        assert_eq!(loop_error(fut.result()), Some(LoopError::Cancelled));
        assert_eq!(loop_error(fut.take_result()), Some(LoopError::Cancelled));
        assert_eq!(loop_error(fut.take_result()), Some(LoopError::Cancelled));
    }

    #[test]
    fn an_error_keeps_its_loop_error_or_os_code_when_read() {
        let fut = detached::<()>();
        fut.set_exception(io::Error::from_raw_os_error(libc_eio()))
            .unwrap();
        assert_eq!(fut.result().unwrap_err().raw_os_error(), Some(libc_eio()));
        assert!(fut.is_error());
    }

    /// EIO is 5 on every Unix this crate builds for.
    fn libc_eio() -> i32 {
        5
    }

    #[test]
    fn every_awaiter_is_woken_on_completion_and_then_takes_the_value() {
        let fut = detached::<u8>();
        let other = fut.clone();
        let a = Arc::new(CountingWaker::default());
        let b = Arc::new(CountingWaker::default());
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        assert!(fut.poll_outcome(&mut Context::from_waker(&wa)).is_pending());
        assert!(fut.poll_outcome(&mut Context::from_waker(&wa)).is_pending());
        assert!(other
            .poll_outcome(&mut Context::from_waker(&wb))
            .is_pending());
        assert_eq!(fut.waiters(), 2, "one registration per awaiting handle");
        fut.set_result(1).unwrap();
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        let taken = fut.poll_outcome(&mut Context::from_waker(&wa));
        assert!(matches!(taken, Poll::Ready(Ok(1))));
    }

    #[test]
    fn a_handle_polled_again_wakes_only_its_newest_waker_and_frees_it_when_dropped() {
        let fut = detached::<u8>();
        let awaiting = fut.clone();
        let a = Arc::new(CountingWaker::default());
        let b = Arc::new(CountingWaker::default());
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        assert!(awaiting
            .poll_outcome(&mut Context::from_waker(&wa))
            .is_pending());
        assert!(awaiting
            .poll_outcome(&mut Context::from_waker(&wb))
            .is_pending());
        assert_eq!(fut.waiters(), 1);
        drop(awaiting);
        assert_eq!(fut.waiters(), 0, "the awaiter went away");
        let again = fut.clone();
        assert!(again
            .poll_outcome(&mut Context::from_waker(&wb))
            .is_pending());
        fut.set_result(1).unwrap();
        assert_eq!(
            (a.0.load(Ordering::SeqCst), b.0.load(Ordering::SeqCst)),
            (0, 1)
        );
    }

    #[test]
    fn wake_when_done_wakes_at_once_for_a_done_future_without_taking_it() {
        let fut = detached::<u8>();
        let w = Arc::new(CountingWaker::default());
        fut.cancel();
        fut.wake_when_done(&Waker::from(w.clone()));
        assert_eq!(w.0.load(Ordering::SeqCst), 1);
        assert!(fut.cancelled());
    }

    #[test]
    fn a_done_callback_can_be_removed_once_and_without_a_loop_is_dropped_unrun() {
        let fut = detached::<u8>();
        let ran = Rc::new(std::cell::Cell::new(false));
        let r = ran.clone();
        let id = fut.add_done_callback(move |_| r.set(true));
        let kept = fut.add_done_callback(|_| {});
        assert_eq!(fut.remove_done_callback(id), 1);
        assert_eq!(fut.remove_done_callback(id), 0);
        fut.set_result(3).unwrap();
        assert_eq!(fut.remove_done_callback(kept), 0);
        assert!(!ran.get());
    }
}
