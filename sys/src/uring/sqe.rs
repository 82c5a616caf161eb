//! The submission queue entries tulip writes, and the user data that ties a completion to
//! its request.

use std::os::fd::{AsRawFd, RawFd};

use rustix::io::ReadWriteFlags;
use rustix::io_uring::{
    io_uring_ptr, io_uring_sqe, io_uring_user_data, IoringFsyncFlags, IoringOp,
};

use super::Op;

/// The user data of a cancellation's own completion, which carries no request.
pub(super) const CANCEL_TAG: u64 = 1 << 63;

/// Generations live in the 31 bits above the slot index; bit 63 marks a cancellation.
pub(super) const GENERATION_MASK: u32 = 0x7fff_ffff;

pub(super) fn user_data(index: u32, generation: u32) -> u64 {
    (u64::from(generation & GENERATION_MASK) << 32) | u64::from(index)
}

pub(super) fn split_user_data(data: u64) -> (u32, u32) {
    (data as u32, ((data >> 32) as u32) & GENERATION_MASK)
}

/// The SQE of `op`, pointing at its buffer (which the slot keeps until the CQE).
pub(super) fn op_sqe(op: &mut Op, data: u64) -> io_uring_sqe {
    let mut sqe = io_uring_sqe {
        user_data: io_uring_user_data::from_u64(data),
        ..io_uring_sqe::default()
    };
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    match op {
        Op::Read { file, offset, buf } => {
            sqe.opcode = IoringOp::Read;
            sqe.fd = file.as_raw_fd();
            sqe.off_or_addr2.off = *offset;
            sqe.addr_or_splice_off_in.addr = io_uring_ptr::new(buf.as_mut_ptr().cast());
            sqe.len.len = clamp(buf.capacity());
            sqe.op_flags.rw_flags = ReadWriteFlags::empty();
        }
        Op::Write { file, offset, buf } => {
            sqe.opcode = IoringOp::Write;
            sqe.fd = file.as_raw_fd();
            sqe.off_or_addr2.off = *offset;
            sqe.addr_or_splice_off_in.addr = io_uring_ptr::new(buf.as_mut_ptr().cast());
            sqe.len.len = clamp(buf.len());
            sqe.op_flags.rw_flags = ReadWriteFlags::empty();
        }
        Op::Fsync { file, data_only } => {
            sqe.opcode = IoringOp::Fsync;
            sqe.fd = file.as_raw_fd();
            sqe.op_flags.fsync_flags = if *data_only {
                IoringFsyncFlags::DATASYNC
            } else {
                IoringFsyncFlags::empty()
            };
        }
    }
    sqe
}

/// The SQE that cancels the request whose user data is `target`.
pub(super) fn cancel_sqe(target: u64) -> io_uring_sqe {
    let mut sqe = io_uring_sqe {
        opcode: IoringOp::AsyncCancel,
        fd: -1,
        user_data: io_uring_user_data::from_u64(CANCEL_TAG),
        ..io_uring_sqe::default()
    };
    sqe.addr_or_splice_off_in.user_data = io_uring_user_data::from_u64(target);
    sqe
}

/// A single-shot `IORING_OP_POLL_ADD` of `fd` for the `poll(2)` events `events`.
pub(super) fn poll_add_sqe(fd: RawFd, events: u32, data: u64) -> io_uring_sqe {
    let mut sqe = io_uring_sqe {
        opcode: IoringOp::PollAdd,
        fd,
        user_data: io_uring_user_data::from_u64(data),
        ..io_uring_sqe::default()
    };
    // 32-bit events (IORING_FEAT_POLL_32BITS, 5.9), little-endian as the kernel reads them.
    sqe.op_flags.poll32_events = events.to_le();
    sqe
}

/// The `IORING_OP_POLL_REMOVE` of the poll whose user data is `target`; its own completion
/// carries [`CANCEL_TAG`].
pub(super) fn poll_remove_sqe(target: u64) -> io_uring_sqe {
    let mut sqe = io_uring_sqe {
        opcode: IoringOp::PollRemove,
        fd: -1,
        user_data: io_uring_user_data::from_u64(CANCEL_TAG),
        ..io_uring_sqe::default()
    };
    sqe.addr_or_splice_off_in.user_data = io_uring_user_data::from_u64(target);
    sqe
}
