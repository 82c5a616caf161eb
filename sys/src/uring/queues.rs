//! The ring's three shared regions as pointers: where the kernel's heads, tails, flags and
//! entries are, found by the offsets `io_uring_setup` returned.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::io_uring::{
    io_uring_cqe, io_uring_params, io_uring_sqe, IoringFeatureFlags, IORING_OFF_CQ_RING,
    IORING_OFF_SQES, IORING_OFF_SQ_RING,
};

use super::mapping::Mapping;

/// Pointers into the SQ ring and the SQE array.
#[derive(Debug)]
pub(super) struct SubmissionQueue {
    pub(super) head: NonNull<AtomicU32>,
    pub(super) tail: NonNull<AtomicU32>,
    pub(super) flags: NonNull<AtomicU32>,
    pub(super) array: NonNull<u32>,
    pub(super) sqes: NonNull<io_uring_sqe>,
    pub(super) mask: u32,
    pub(super) entries: u32,
    /// Our copy of the tail: only this thread writes it.
    pub(super) tail_local: u32,
}

/// Pointers into the CQ ring.
#[derive(Debug)]
pub(super) struct CompletionQueue {
    pub(super) head: NonNull<AtomicU32>,
    pub(super) tail: NonNull<AtomicU32>,
    pub(super) cqes: NonNull<io_uring_cqe>,
    pub(super) mask: u32,
    pub(super) entries: u32,
}

/// Map the SQ ring, the CQ ring (the same mapping with `IORING_FEAT_SINGLE_MMAP`, 5.4+) and
/// the SQE array, and find the kernel's words in them by the offsets setup returned.
pub(super) fn map_queues(
    fd: &OwnedFd,
    params: &io_uring_params,
) -> io::Result<(SubmissionQueue, CompletionQueue, Vec<Mapping>)> {
    let (sq_entries, cq_entries) = (params.sq_entries, params.cq_entries);
    let sq_len = params.sq_off.array as usize + sq_entries as usize * size_of::<u32>();
    let cq_len = params.cq_off.cqes as usize + cq_entries as usize * size_of::<io_uring_cqe>();
    let single = params.features.contains(IoringFeatureFlags::SINGLE_MMAP);
    let ring_len = if single { sq_len.max(cq_len) } else { sq_len };
    let sq_map = Mapping::new(fd.as_fd(), ring_len, IORING_OFF_SQ_RING)?;
    let cq_map = match single {
        true => None,
        false => Some(Mapping::new(fd.as_fd(), cq_len, IORING_OFF_CQ_RING)?),
    };
    let sqes_len = sq_entries as usize * size_of::<io_uring_sqe>();
    let sqe_map = Mapping::new(fd.as_fd(), sqes_len, IORING_OFF_SQES)?;
    let cq_base = cq_map.as_ref().unwrap_or(&sq_map);
    let (sq_off, cq_off) = (&params.sq_off, &params.cq_off);
    let sq = SubmissionQueue {
        head: sq_map.at(sq_off.head, 1)?,
        tail: sq_map.at(sq_off.tail, 1)?,
        flags: sq_map.at(sq_off.flags, 1)?,
        array: sq_map.at(sq_off.array, sq_entries)?,
        sqes: sqe_map.at(0, sq_entries)?,
        // Ring sizes are powers of two: the mask is entries - 1 (as `ring_mask` says).
        mask: sq_entries - 1,
        entries: sq_entries,
        tail_local: 0,
    };
    let cq = CompletionQueue {
        head: cq_base.at(cq_off.head, 1)?,
        tail: cq_base.at(cq_off.tail, 1)?,
        cqes: cq_base.at(cq_off.cqes, cq_entries)?,
        mask: cq_entries - 1,
        entries: cq_entries,
    };
    // SAFETY: points into the SQ mapping just made (checked by `at`); a fresh ring's tail is
    // 0 but is read rather than assumed.
    let tail = unsafe { sq.tail.as_ref() }.load(Ordering::Acquire);
    let sq = SubmissionQueue {
        tail_local: tail,
        ..sq
    };
    let mut mappings = vec![sq_map, sqe_map];
    mappings.extend(cq_map);
    Ok((sq, cq, mappings))
}
