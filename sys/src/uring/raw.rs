//! The ring itself, shared by the completion [`Ring`](super::Ring) and the readiness
//! [`UringSelector`](super::UringSelector): `io_uring_setup`, the mapped queues, writing an
//! SQE and publishing the tail, reaping CQEs, and `io_uring_enter` (plain, or with a timeout
//! through `IORING_ENTER_EXT_ARG`). What the entries mean, and how many may be in flight, is
//! each user's business.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

use rustix::io_uring::{
    io_uring_enter, io_uring_enter_arg, io_uring_getevents_arg, io_uring_params, io_uring_ptr,
    io_uring_setup, io_uring_sqe, IoringEnterFlags, IoringFeatureFlags, IoringSetupFlags,
    IoringSqFlags,
};
use rustix::time::Timespec;

use super::mapping::Mapping;
use super::queues::{map_queues, CompletionQueue, SubmissionQueue};

/// An io_uring fd with its SQ, SQE array and CQ mapped. Not `Send`: one thread drives it.
#[derive(Debug)]
pub(super) struct RawRing {
    sq: SubmissionQueue,
    cq: CompletionQueue,
    features: IoringFeatureFlags,
    enters: u64,
    // The mappings are dropped before the ring fd is closed, and after every use above.
    _mappings: Vec<Mapping>,
    fd: OwnedFd,
}

impl RawRing {
    /// A ring of `depth` SQEs (clamped by the kernel), and a CQ of `cq_entries` if given
    /// (`IORING_SETUP_CQSIZE`), else twice the depth.
    ///
    /// # Errors
    /// The kernel's: `ENOSYS` (no io_uring), `EPERM` (seccomp, `kernel.io_uring_disabled`),
    /// `ENOMEM`, `EMFILE`.
    pub(super) fn new(depth: u32, cq_entries: Option<u32>) -> io::Result<RawRing> {
        let mut params = io_uring_params::default();
        params.flags = IoringSetupFlags::CLAMP;
        if let Some(entries) = cq_entries {
            params.flags |= IoringSetupFlags::CQSIZE;
            params.cq_entries = entries;
        }
        // SAFETY: no ATTACH_WQ flag, so `wq_fd` is not read; `params` is a valid, writable
        // io_uring_params for the kernel to fill in.
        let fd = unsafe { io_uring_setup(depth, &mut params)? };
        let (sq, cq, mappings) = map_queues(&fd, &params)?;
        Ok(RawRing {
            sq,
            cq,
            features: params.features,
            enters: 0,
            _mappings: mappings,
            fd,
        })
    }

    /// What the kernel said it supports (`IORING_FEAT_*`).
    pub(super) fn features(&self) -> IoringFeatureFlags {
        self.features
    }

    /// The SQ's size.
    pub(super) fn sq_entries(&self) -> u32 {
        self.sq.entries
    }

    /// The CQ's size.
    pub(super) fn cq_entries(&self) -> u32 {
        self.cq.entries
    }

    /// The ring's fd, borrowed.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// How many `io_uring_enter` calls this ring has made.
    pub(super) fn enters(&self) -> u64 {
        self.enters
    }

    /// SQEs written (published or not) that the kernel has not consumed yet. Without
    /// `SQPOLL` the kernel consumes them only inside `io_uring_enter`.
    pub(super) fn unconsumed(&self) -> u32 {
        // SAFETY: points into the live SQ mapping (checked in `map_queues`).
        let head_word = unsafe { self.sq.head.as_ref() };
        // Acquire: the kernel has finished reading the SQEs before `head`.
        self.sq
            .tail_local
            .wrapping_sub(head_word.load(Ordering::Acquire))
    }

    /// True if the SQ has no free slot.
    pub(super) fn sq_is_full(&self) -> bool {
        self.unconsumed() >= self.sq.entries
    }

    /// Write `sqe` into the next free SQ slot (the caller checked [`RawRing::sq_is_full`]);
    /// the kernel sees it after [`RawRing::publish`].
    ///
    /// # Safety
    /// Whatever `sqe` points at (a buffer, an iovec, a timespec) must stay valid, and not be
    /// otherwise accessed in a conflicting way, until its completion has been reaped.
    pub(super) unsafe fn write_sqe(&mut self, sqe: io_uring_sqe) {
        debug_assert!(!self.sq_is_full(), "write_sqe into a full SQ");
        let at = self.sq.tail_local & self.sq.mask;
        // SAFETY: `at` < entries: within the SQE array and the index array, both inside their
        // mappings (checked in `map_queues`); the caller checked the SQ has a free slot, so
        // the kernel has consumed this one (the head, loaded with Acquire, passed it) and
        // reads it again only after the tail is published.
        unsafe {
            self.sq.sqes.as_ptr().add(at as usize).write(sqe);
            self.sq.array.as_ptr().add(at as usize).write(at);
        }
        self.sq.tail_local = self.sq.tail_local.wrapping_add(1);
    }

    /// Publish the SQEs written so far.
    pub(super) fn publish(&self) {
        // SAFETY: points into the live SQ mapping (checked in `map_queues`).
        let tail_word = unsafe { self.sq.tail.as_ref() };
        // Release: the SQEs and indices written before are visible before the new tail.
        tail_word.store(self.sq.tail_local, Ordering::Release);
    }

    /// The SQ ring's flags word (`IORING_SQ_CQ_OVERFLOW`, ...).
    pub(super) fn sq_flags(&self) -> IoringSqFlags {
        // SAFETY: points into the live SQ mapping (checked in `map_queues`); the kernel
        // writes this word atomically.
        let word = unsafe { self.sq.flags.as_ref() };
        IoringSqFlags::from_bits_retain(word.load(Ordering::Acquire))
    }

    /// Hand every posted CQE's user data and result to `each`, oldest first, and free its
    /// slot; returns how many.
    pub(super) fn reap(&mut self, mut each: impl FnMut(u64, i32)) -> u32 {
        // SAFETY: both pointers point into the live CQ mapping (checked in `map_queues`);
        // `AtomicU32` has `u32`'s layout, and the kernel only touches these words atomically.
        let (head_word, tail_word) = unsafe { (self.cq.head.as_ref(), self.cq.tail.as_ref()) };
        // Only this thread writes the head.
        let start = head_word.load(Ordering::Relaxed);
        // Acquire: the CQEs up to `tail` are written before the kernel published it.
        let tail = tail_word.load(Ordering::Acquire);
        let mut head = start;
        while head != tail {
            let index = head & self.cq.mask;
            // SAFETY: `index` is within the CQ's `entries` CQEs (the mask is entries - 1),
            // which lie inside the CQ mapping (checked in `map_queues`); the kernel published
            // this CQE before the tail we loaded with Acquire, and will not reuse it before
            // we store the head below.
            let (data, res) = unsafe {
                let cqe = self.cq.cqes.as_ptr().add(index as usize);
                ((*cqe).user_data.u64_(), (*cqe).res)
            };
            head = head.wrapping_add(1);
            each(data, res);
        }
        // Release: we are done reading the CQEs before `head`; the kernel may reuse them.
        head_word.store(head, Ordering::Release);
        head.wrapping_sub(start)
    }

    /// One `io_uring_enter`, `EINTR` retried.
    pub(super) fn enter(
        &mut self,
        submit: u32,
        wait: u32,
        flags: IoringEnterFlags,
    ) -> io::Result<u32> {
        loop {
            self.enters += 1;
            // SAFETY: every SQE up to the tail was fully written before the tail was
            // published, and what it points at stays valid until its CQE is reaped (the
            // contract of `write_sqe`); no EXT_ARG flag is passed.
            match unsafe { io_uring_enter(self.fd.as_fd(), submit, wait, flags) } {
                Err(rustix::io::Errno::INTR) => continue,
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// One `io_uring_enter` with `IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG`: submit
    /// `submit` SQEs, then wait until `wait` CQEs are posted or `timeout` (relative) passes.
    /// `EINTR` and `ETIME` are returned, not retried: the caller knows its deadline.
    pub(super) fn enter_with_timeout(
        &mut self,
        submit: u32,
        wait: u32,
        timeout: Option<&Timespec>,
    ) -> io::Result<u32> {
        let arg = io_uring_getevents_arg {
            ts: match timeout {
                Some(ts) => io_uring_ptr::new((ts as *const Timespec).cast_mut().cast()),
                None => io_uring_ptr::null(),
            },
            ..io_uring_getevents_arg::default()
        };
        self.enters += 1;
        let flags = IoringEnterFlags::GETEVENTS | IoringEnterFlags::EXT_ARG;
        // SAFETY: the SQEs are valid as in `enter`; `arg` and the timespec it points at (or
        // null: wait without a timeout) live across the call, and its sigmask is null (the
        // signal mask is left alone).
        unsafe { io_uring_enter_arg(self.fd.as_fd(), submit, wait, flags, Some(&arg)) }
            .map_err(io::Error::from)
    }
}
