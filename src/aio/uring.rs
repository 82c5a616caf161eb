//! The io_uring engine: requests go into tulip-sys's [`Ring`], which owns their buffers until
//! the kernel completes them. The loop gives the kernel everything queued during an iteration
//! in one `io_uring_enter`, at the start of the next one (`flush`); completions arrive through
//! the ring's eventfd, watched by the loop's selector like any reader, so every readiness
//! backend drives the completion model.

use std::io;

use tulip_sys::uring::{Completion, Op, Ring};

use super::request::{read_buffer, Pending, Request};
use crate::EventLoop;

pub(crate) struct UringEngine {
    ring: Ring<Pending>,
    /// Completions drained, reused between drains.
    drained: Vec<Completion<Pending>>,
    /// The thread's count of cancelled futures when the requests were last looked over for
    /// cancelled ones: while it stays, none of theirs can have been cancelled.
    cancellations_seen: u64,
}

impl UringEngine {
    /// A ring of `depth` entries, its eventfd watched by `lp`. `refusal` simulates a kernel
    /// that refuses io_uring with that errno.
    pub(crate) fn new(lp: &EventLoop, depth: u32, refusal: Option<i32>) -> io::Result<UringEngine> {
        let ring = Ring::with_refusal(depth, refusal)?;
        lp.add_reader(ring.eventfd(), super::on_completions)?;
        Ok(UringEngine {
            ring,
            drained: Vec::new(),
            cancellations_seen: crate::task::cancellations(),
        })
    }

    pub(crate) fn depth(&self) -> u32 {
        self.ring.depth()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.ring.in_flight()
    }

    /// How many `io_uring_enter` calls the ring made.
    pub(crate) fn enters(&self) -> u64 {
        self.ring.enters()
    }

    /// Queue `request`; it reaches the kernel at the next flush.
    pub(crate) fn start(&mut self, request: Request, pending: Pending) {
        let op = match request {
            Request::Read {
                file,
                offset,
                len,
                reuse,
            } => match read_buffer(len, reuse) {
                Ok(buf) => Op::Read { file, offset, buf },
                Err(e) => return pending.finish(Err(e), None),
            },
            Request::Write { file, offset, buf } => Op::Write { file, offset, buf },
            Request::Sync { file, data_only } => Op::Fsync { file, data_only },
        };
        self.ring.push(op, pending);
    }

    /// The iteration's one `io_uring_enter`: cancel what nobody waits for any more (looked for
    /// only when a future was cancelled since the last flush), submit
    /// what was queued, and take the completions already there (reads served from the page
    /// cache complete within the call).
    pub(crate) fn flush(&mut self) -> io::Result<Vec<Completion<Pending>>> {
        if self.ring.in_flight() == 0 {
            return Ok(Vec::new());
        }
        // Only when some future was cancelled since the last look (a future becomes cancelled
        // nowhere else), not at every flush: a look goes over every request in flight.
        let cancellations = crate::task::cancellations();
        if cancellations != self.cancellations_seen {
            self.cancellations_seen = cancellations;
            self.ring.cancel_where(Pending::cancelled);
        }
        self.ring.submit()?;
        Ok(self.drain())
    }

    /// The completions posted since the last drain; the eventfd is reset first, so one posted
    /// after the drain signals it again.
    pub(crate) fn on_eventfd(&mut self) -> io::Result<Vec<Completion<Pending>>> {
        self.ring.clear_eventfd()?;
        Ok(self.drain())
    }

    fn drain(&mut self) -> Vec<Completion<Pending>> {
        let mut out = std::mem::take(&mut self.drained);
        self.ring.drain(&mut out);
        out
    }

    /// Give back the (emptied) completion list, to reuse its allocation.
    pub(crate) fn recycle(&mut self, mut list: Vec<Completion<Pending>>) {
        list.clear();
        if list.capacity() > self.drained.capacity() {
            self.drained = list;
        }
    }

    /// Closing the loop: cancel every request (one the kernel already finished keeps its
    /// result; one that would never finish, a read of a pipe nobody writes, ends), and wait
    /// for every completion before the ring and the buffers go. The eventfd's reader is
    /// removed.
    pub(crate) fn close(mut self, lp: &EventLoop) -> Vec<Completion<Pending>> {
        lp.remove_reader(self.ring.eventfd());
        let mut out = Vec::new();
        self.ring.cancel_where(|_| true);
        // On an error, the ring's drop cancels what is left and waits for it.
        let _ = self.ring.complete_all(&mut out);
        out
    }
}
