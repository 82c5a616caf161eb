//! An io_uring of tulip's own, written from the system calls up (no liburing): the completion
//! model ("tell me when the read is done"), next to the selectors' readiness model, and the
//! `uring` readiness backend ([`UringSelector`]: poll requests on a ring). Both stand on one
//! ring (`raw.rs`: setup, the mapped queues, SQE writing, CQE reaping, `io_uring_enter`); this
//! file is the completion side.
//!
//! [`Ring`] sets up a ring with `io_uring_setup(2)`, `mmap`s its submission queue (SQ), its
//! SQE array and its completion queue (CQ), and registers an eventfd
//! (`IORING_REGISTER_EVENTFD`) that the kernel signals on every completion, so that any
//! readiness selector can watch a ring. It owns every request's buffer and file from
//! [`Ring::push`] until the request's completion has been reaped: memory the kernel may still
//! write into is never freed or reused.
//!
//! The rings are shared with the kernel, which reads what we publish and publishes what we
//! read; the orderings, as io_uring(7) and liburing's barriers state them:
//! - SQ: the SQEs and the index array are written first, then the tail is stored with
//!   `Release`, so the kernel sees complete entries; the kernel's head is loaded with
//!   `Acquire` before a slot it has consumed is written again.
//! - CQ: the kernel's tail is loaded with `Acquire` before the CQEs up to it are read; our
//!   head is stored with `Release` after they are read, so the kernel overwrites none we are
//!   still reading.
//!
//! The CQ never overflows: no more requests (and cancellations) are given to the kernel than
//! the CQ has entries; the rest wait in user space ([`Ring::push`] never fails for a full
//! queue). `IORING_SQ_CQ_OVERFLOW` is still honoured (an `io_uring_enter` with
//! `IORING_ENTER_GETEVENTS` flushes the kernel's overflow list), as is `EBUSY`/`EAGAIN` from
//! `io_uring_enter` (the SQEs stay queued and are offered again).

mod mapping;
mod queues;
mod raw;
mod selector;
mod sqe;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{eventfd, EventfdFlags};
use rustix::io_uring::{
    io_uring_register, IoringEnterFlags, IoringFeatureFlags, IoringRegisterOp, IoringSqFlags,
};

use raw::RawRing;
use sqe::{cancel_sqe, op_sqe, split_user_data, user_data, CANCEL_TAG, GENERATION_MASK};

pub use selector::UringSelector;

/// The largest ring depth the kernel accepts (`IORING_MAX_ENTRIES`).
pub const MAX_DEPTH: u32 = 32_768;

/// One operation on a file, with what the kernel reads from or writes into. The ring keeps it,
/// buffer and file included, until the operation's completion arrives.
#[derive(Debug)]
pub enum Op {
    /// `pread`: read up to `buf.capacity()` bytes at `offset` into `buf` (whose length is
    /// ignored: the completion's buffer holds exactly the bytes read).
    Read {
        /// The file, kept open while the kernel may use its fd.
        file: Arc<File>,
        /// Where to read, in bytes from the start of the file.
        offset: u64,
        /// Where the bytes go.
        buf: Vec<u8>,
    },
    /// `pwrite`: write `buf` at `offset`.
    Write {
        /// The file, kept open while the kernel may use its fd.
        file: Arc<File>,
        /// Where to write, in bytes from the start of the file.
        offset: u64,
        /// The bytes to write.
        buf: Vec<u8>,
    },
    /// `fsync`, or `fdatasync` if `data_only`.
    Fsync {
        /// The file to flush.
        file: Arc<File>,
        /// Only the data and the metadata needed to read it back (`fdatasync`).
        data_only: bool,
    },
}

/// A finished request: its payload, the kernel's result (a byte count, 0 for `fsync`) and, for
/// a read or a write, its buffer (a read's holding exactly the bytes read).
#[derive(Debug)]
pub struct Completion<T> {
    /// What [`Ring::push`] was given with the operation.
    pub payload: T,
    /// The byte count, or the error: `ECANCELED` for a cancelled request.
    pub result: io::Result<usize>,
    /// The read's bytes, or the written buffer given back.
    pub buf: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum SlotState {
    /// Waiting in user space for room in the SQ.
    Waiting,
    /// In the SQ or the kernel.
    Submitted,
    /// In the kernel, a cancellation asked for.
    Cancelling,
    /// Cancelled before it reached the kernel: it completes with `ECANCELED` at the next drain.
    Withdrawn,
}

#[derive(Debug)]
struct Slot<T> {
    op: Op,
    payload: T,
    state: SlotState,
}

/// An io_uring: its fd, its mapped queues, the eventfd the kernel signals on completions, and
/// the requests it owns until they complete. `T` is the caller's payload for each request
/// (what to tell when it completes). Not `Send`: one thread drives a ring.
///
/// Dropping the ring cancels what is in flight and waits for every completion before it
/// frees a buffer or unmaps anything.
#[derive(Debug)]
pub struct Ring<T> {
    raw: RawRing,
    slots: Vec<Option<Slot<T>>>,
    /// Per slot, how many requests have used it: part of the user data, so that a late
    /// cancellation cannot reach the slot's next request.
    generations: Vec<u32>,
    free: Vec<u32>,
    /// Requests waiting for room in the SQ, oldest first.
    backlog: VecDeque<u32>,
    /// Cancellations waiting for room in the SQ (user data of their targets).
    cancels: VecDeque<u64>,
    /// Requests withdrawn before submission, to complete at the next drain.
    withdrawn: Vec<u32>,
    /// SQEs written but not yet taken by `io_uring_enter`.
    unsubmitted: u32,
    /// Submitted entries (requests and cancellations) whose CQE has not been reaped.
    in_kernel: u32,
    /// Requests not yet reaped (any state).
    live: usize,
    /// `drain`'s buffer of (user data, result) pairs.
    reaped: Vec<(u64, i32)>,
    eventfd: OwnedFd,
}

impl<T> Ring<T> {
    /// A ring of `depth` submission entries (the CQ gets the kernel's default, twice that),
    /// with its eventfd registered.
    ///
    /// # Errors
    /// `InvalidInput` for a depth of 0 or above [`MAX_DEPTH`]; the kernel's error if io_uring
    /// is refused: `ENOSYS` (no io_uring in this kernel), `EPERM` (a seccomp filter,
    /// `kernel.io_uring_disabled`), `ENOMEM` (locked-memory limit); `Unsupported` for a kernel
    /// older than 5.6, which has no `IORING_OP_READ`.
    pub fn new(depth: u32) -> io::Result<Ring<T>> {
        Ring::with_refusal(depth, None)
    }

    /// [`Ring::new`], except that with `Some(errno)` setup fails with that error before asking
    /// the kernel, as a seccomp filter or `kernel.io_uring_disabled` would make it fail: for
    /// testing what happens when io_uring is refused.
    ///
    /// # Errors
    /// As [`Ring::new`].
    pub fn with_refusal(depth: u32, refusal: Option<i32>) -> io::Result<Ring<T>> {
        if depth == 0 || depth > MAX_DEPTH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("an io_uring depth of {depth} is outside 1..={MAX_DEPTH}"),
            ));
        }
        if let Some(errno) = refusal {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let raw = RawRing::new(depth, None)?;
        if !raw.features().contains(IoringFeatureFlags::RW_CUR_POS) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel's io_uring predates Linux 5.6 and has no IORING_OP_READ",
            ));
        }
        let eventfd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        let event_raw: RawFd = eventfd.as_raw_fd();
        // SAFETY: IORING_REGISTER_EVENTFD reads one `int` from `arg`: `event_raw` lives across
        // the call, and the eventfd it names is owned by the ring, which outlives the
        // registration.
        unsafe {
            io_uring_register(
                raw.fd(),
                IoringRegisterOp::RegisterEventfd,
                (&event_raw as *const RawFd).cast(),
                1,
            )?;
        }
        Ok(Ring {
            raw,
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            backlog: VecDeque::new(),
            cancels: VecDeque::new(),
            withdrawn: Vec::new(),
            unsubmitted: 0,
            in_kernel: 0,
            live: 0,
            reaped: Vec::new(),
            eventfd,
        })
    }

    /// The submission queue's depth, as the kernel set it up.
    pub fn depth(&self) -> u32 {
        self.raw.sq_entries()
    }

    /// The completion queue's size: at most this many requests are in the kernel at once.
    pub fn completion_entries(&self) -> u32 {
        self.raw.cq_entries()
    }

    /// The eventfd the kernel signals on each completion, for a selector to watch for
    /// reading; [`Ring::clear_eventfd`] consumes its count.
    pub fn eventfd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// Reset the eventfd's count, before [`Ring::drain`]: a completion posted after this
    /// signals it again.
    ///
    /// # Errors
    /// The kernel's; nothing to read is not an error.
    pub fn clear_eventfd(&self) -> io::Result<()> {
        match crate::fd::read(self.eventfd.as_fd(), &mut [0u8; 8]) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// How many `io_uring_enter` calls this ring has made.
    pub fn enters(&self) -> u64 {
        self.raw.enters()
    }

    /// Requests pushed and not yet reaped by [`Ring::drain`].
    pub fn in_flight(&self) -> usize {
        self.live
    }

    /// Queue `op` with `payload`; it goes to the kernel at the next [`Ring::submit`] if the
    /// queues have room, else waits in user space for a later one. Never fails: a read's
    /// length is its buffer's capacity, clamped to `u32::MAX` (a short read), as is a write's.
    pub fn push(&mut self, op: Op, payload: T) {
        let slot = Slot {
            op,
            payload,
            state: SlotState::Waiting,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = Some(slot);
                index
            }
            None => {
                self.slots.push(Some(slot));
                self.generations.push(0);
                // Each request holds a buffer or a file: 2^32 of them exhaust memory first.
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 requests in flight")
            }
        };
        self.live += 1;
        self.backlog.push_back(index);
    }

    /// Ask for every request whose payload `cancel` picks to be cancelled, and return how many
    /// it picked. One still in user space completes with `ECANCELED` at the next drain; one in
    /// the kernel gets an `IORING_OP_ASYNC_CANCEL` and completes when the kernel says, with
    /// `ECANCELED` or its real result if it finished first. Its buffer stays owned by the ring
    /// until then. A request is picked at most once.
    pub fn cancel_where(&mut self, mut cancel: impl FnMut(&T) -> bool) -> usize {
        let mut picked = 0;
        for (index, entry) in self.slots.iter_mut().enumerate() {
            let Some(slot) = entry else { continue };
            let generation = self.generations[index];
            let new_state = match slot.state {
                SlotState::Waiting => SlotState::Withdrawn,
                SlotState::Submitted => SlotState::Cancelling,
                SlotState::Cancelling | SlotState::Withdrawn => continue,
            };
            if !cancel(&slot.payload) {
                continue;
            }
            picked += 1;
            slot.state = new_state;
            let index = index as u32;
            match new_state {
                SlotState::Withdrawn => self.withdrawn.push(index),
                _ => self.cancels.push_back(user_data(index, generation)),
            }
        }
        picked
    }

    /// The payloads of the requests not yet reaped, for a caller that looks for ones to cancel.
    pub fn payloads(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten().map(|slot| &slot.payload)
    }

    /// Give the kernel what is queued, in one `io_uring_enter` (none if nothing is): the SQ is
    /// first filled from user space, as far as the SQ and the CQ have room. Returns how many
    /// entries the kernel took.
    ///
    /// # Errors
    /// The kernel's, other than `EINTR` (retried) and `EAGAIN`/`EBUSY` (the entries stay
    /// queued for the next call, unless nothing is in flight to make room: then after a few
    /// short sleeps the error is returned).
    pub fn submit(&mut self) -> io::Result<u32> {
        self.fill_sq();
        let overflow = self.raw.sq_flags().contains(IoringSqFlags::CQ_OVERFLOW);
        if self.unsubmitted == 0 && !overflow {
            return Ok(0);
        }
        let flags = if overflow {
            IoringEnterFlags::GETEVENTS
        } else {
            IoringEnterFlags::empty()
        };
        let mut busy_retries = 0;
        loop {
            match self.enter(self.unsubmitted, 0, flags) {
                Ok(taken) => {
                    let taken = taken.min(self.unsubmitted);
                    self.unsubmitted -= taken;
                    self.in_kernel += taken;
                    return Ok(taken);
                }
                Err(e) if is_busy(&e) && self.in_kernel > 0 => return Ok(0),
                Err(e) if is_busy(&e) && busy_retries < 100 => {
                    busy_retries += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Move every completion the kernel has posted (and every request withdrawn before
    /// submission) into `out`, releasing their slots; returns how many.
    pub fn drain(&mut self, out: &mut Vec<Completion<T>>) -> usize {
        let before = out.len();
        // Reaped into a buffer kept across calls (no allocation in the steady state), then
        // completed, as completing needs the rest of `self`.
        let mut reaped = std::mem::take(&mut self.reaped);
        self.raw.reap(|data, res| reaped.push((data, res)));
        for &(data, res) in &reaped {
            self.in_kernel = self.in_kernel.saturating_sub(1);
            if data & CANCEL_TAG == 0 {
                if let Some(done) = self.complete(data, res) {
                    out.push(done);
                }
            }
        }
        reaped.clear();
        self.reaped = reaped;
        for index in std::mem::take(&mut self.withdrawn) {
            if let Some(done) = self.release(index, -libc::ECANCELED) {
                out.push(done);
            }
        }
        out.len() - before
    }

    /// Submit everything and wait until every request has completed, moving the completions
    /// into `out`: what closing a loop does.
    ///
    /// # Errors
    /// The kernel's, from `io_uring_enter`; the requests still in flight then stay owned by
    /// the ring (whose drop waits for them).
    pub fn complete_all(&mut self, out: &mut Vec<Completion<T>>) -> io::Result<()> {
        loop {
            self.submit()?;
            self.drain(out);
            if self.live == 0 {
                return Ok(());
            }
            if self.in_kernel > 0 {
                self.enter(0, 1, IoringEnterFlags::GETEVENTS)?;
            }
        }
    }

    /// One `io_uring_enter`, `EINTR` retried.
    fn enter(&mut self, submit: u32, wait: u32, flags: IoringEnterFlags) -> io::Result<u32> {
        self.raw.enter(submit, wait, flags)
    }

    /// Move queued cancellations, then waiting requests, into the SQ while the SQ has a free
    /// slot and the CQ room for one more completion; publish the new tail.
    fn fill_sq(&mut self) {
        let mut written = false;
        loop {
            let cq_full = self.in_kernel + self.unsubmitted >= self.raw.cq_entries();
            if self.raw.sq_is_full() || cq_full {
                break;
            }
            let sqe = if let Some(target) = self.cancels.pop_front() {
                if !self.is_cancelling(target) {
                    continue;
                }
                cancel_sqe(target)
            } else if let Some(index) = self.backlog.pop_front() {
                let Some(slot) = self.slots[index as usize].as_mut() else {
                    continue;
                };
                if slot.state != SlotState::Waiting {
                    continue; // withdrawn: completed by `drain`
                }
                slot.state = SlotState::Submitted;
                op_sqe(
                    &mut slot.op,
                    user_data(index, self.generations[index as usize]),
                )
            } else {
                break;
            };
            // SAFETY: the SQE points at its slot's buffer (or at nothing, for a cancellation);
            // the slot keeps the buffer, and is neither reused nor dropped, until this
            // request's CQE is reaped by `drain` (the ring's drop waits for it).
            unsafe { self.raw.write_sqe(sqe) };
            self.unsubmitted += 1;
            written = true;
        }
        if written {
            self.raw.publish();
        }
    }

    fn is_cancelling(&self, target: u64) -> bool {
        let (index, generation) = split_user_data(target);
        let slot = self.slots.get(index as usize).and_then(Option::as_ref);
        slot.is_some_and(|s| s.state == SlotState::Cancelling)
            && self.generations[index as usize] == generation
    }

    /// The completion of request `data` with the kernel's `res`.
    fn complete(&mut self, data: u64, res: i32) -> Option<Completion<T>> {
        let (index, generation) = split_user_data(data);
        if *self.generations.get(index as usize)? != generation {
            return None;
        }
        self.release(index, res)
    }

    /// Free slot `index`, turning its op and the kernel's `res` into a completion.
    fn release(&mut self, index: u32, res: i32) -> Option<Completion<T>> {
        let slot = self.slots.get_mut(index as usize)?.take()?;
        // A late cancellation of this request must not match the slot's next user.
        self.generations[index as usize] =
            self.generations[index as usize].wrapping_add(1) & GENERATION_MASK;
        self.free.push(index);
        self.live -= 1;
        let result = if res < 0 {
            Err(io::Error::from_raw_os_error(-res))
        } else {
            Ok(res as usize)
        };
        let buf = match slot.op {
            Op::Read { mut buf, .. } => {
                let read = match result {
                    // Never more than asked for: the SQE's length was at most the capacity.
                    Ok(n) => n.min(buf.capacity()),
                    Err(_) => 0,
                };
                // SAFETY: the kernel wrote `read` bytes into the buffer's spare capacity (the
                // completion says so), and `read` is within the capacity.
                unsafe { buf.set_len(read) };
                Some(buf)
            }
            Op::Write { buf, .. } => Some(buf),
            Op::Fsync { .. } => None,
        };
        Some(Completion {
            payload: slot.payload,
            result,
            buf,
        })
    }
}

impl<T> Drop for Ring<T> {
    /// Cancel what is in flight and wait for every completion: the kernel must be done with
    /// every buffer before it is freed. If the kernel cannot be asked, the buffers are leaked
    /// rather than freed.
    fn drop(&mut self) {
        if self.live == 0 {
            return;
        }
        self.cancel_where(|_| true);
        let mut finished = Vec::new();
        if self.complete_all(&mut finished).is_err() {
            std::mem::forget(std::mem::take(&mut self.slots));
        }
        drop(finished);
    }
}

fn is_busy(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY))
}
