//! The pool engine: each operation is a blocking `pread`, `pwrite` or `fsync` on the loop's
//! thread pool (the one `run_in_executor` uses), as `tokio::fs` does. For every OS, for
//! kernels that refuse io_uring, and when asked for.
//!
//! A worker leaves the outcome in a shared list and, if the list was empty, schedules one
//! `call_soon_threadsafe` callback that collects the whole list on the loop's thread: a burst
//! of completions costs one wake-up. The futures stay on the loop's thread, in `waiting`.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::request::{self, Pending, Request};
use crate::EventLoop;

/// A finished operation: its id, its byte count or error, a read's bytes.
type Outcome = (u64, io::Result<usize>, Option<Vec<u8>>);

/// What the workers and the loop's thread share.
#[derive(Default)]
struct Arrivals {
    list: Mutex<Vec<Outcome>>,
    /// Signalled on each outcome, for a closing loop waiting for them all.
    arrived: Condvar,
}

impl Arrivals {
    fn lock(&self) -> MutexGuard<'_, Vec<Outcome>> {
        // Nothing panics under this lock.
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct PoolEngine {
    finished: Arc<Arrivals>,
    waiting: HashMap<u64, Pending>,
    next_id: u64,
}

impl PoolEngine {
    pub(crate) fn new() -> PoolEngine {
        PoolEngine {
            finished: Arc::default(),
            waiting: HashMap::new(),
            next_id: 0,
        }
    }

    /// Operations started and not yet collected.
    pub(crate) fn in_flight(&self) -> usize {
        self.waiting.len()
    }

    /// Run `request` on the pool; `pending` is completed when its outcome is collected.
    pub(crate) fn start(&mut self, lp: &EventLoop, request: Request, pending: Pending) {
        let id = self.next_id;
        self.next_id += 1;
        let finished = Arc::clone(&self.finished);
        let handle = lp.handle();
        let job = Box::new(move || {
            let (result, buf) = run(request);
            let first = {
                let mut list = finished.lock();
                list.push((id, result, buf));
                list.len() == 1
            };
            finished.arrived.notify_all();
            if first {
                // Err: the loop closed; `close` collects the outcome itself.
                let _ = handle.call_soon_threadsafe(super::collect);
            }
        });
        match lp.blocking_pool().submit(job) {
            Ok(()) => {
                self.waiting.insert(id, pending);
            }
            Err(e) => pending.finish(Err(e), None),
        }
    }

    /// The outcomes that arrived, with their futures, to complete outside any borrow.
    pub(crate) fn collect(&mut self, out: &mut Vec<request::Finished>) {
        let arrived = std::mem::take(&mut *self.finished.lock());
        for (id, result, buf) in arrived {
            if let Some(pending) = self.waiting.remove(&id) {
                out.push((pending, result, buf));
            }
        }
    }

    /// Wait until every operation started has finished (no thread can be interrupted), and
    /// collect them all: what closing the loop does.
    pub(crate) fn wait_all(&mut self, out: &mut Vec<request::Finished>) {
        loop {
            self.collect(out);
            if self.waiting.is_empty() {
                return;
            }
            let list = self.finished.lock();
            if list.is_empty() {
                drop(self.finished.arrived.wait(list));
            }
        }
    }
}

/// The blocking system call of `request`, `EINTR` retried.
fn run(request: Request) -> (io::Result<usize>, Option<Vec<u8>>) {
    match request {
        Request::Read {
            file,
            offset,
            len,
            reuse,
        } => {
            let mut buf = match request::read_buffer(len, reuse) {
                Ok(buf) => buf,
                Err(e) => return (Err(e), None),
            };
            buf.resize(len, 0);
            let result = retry(|| file.read_at(&mut buf, offset));
            buf.truncate(*result.as_ref().unwrap_or(&0));
            (result, Some(buf))
        }
        Request::Write { file, offset, buf } => (retry(|| file.write_at(&buf, offset)), None),
        Request::Sync { file, data_only } => (retry(|| sync(&file, data_only).map(|()| 0)), None),
    }
}

fn sync(file: &File, data_only: bool) -> io::Result<()> {
    if data_only {
        file.sync_data()
    } else {
        file.sync_all()
    }
}

fn retry(mut call: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
