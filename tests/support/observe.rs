//! What the futures, tasks and coroutines tests observe with: a log of what ran, a counter of
//! drops, and one non-blocking turn of a loop. Included with `#[path]` by each of them.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use tulip::EventLoop;

/// One iteration that does not wait: runs what is ready now (and what other threads queued).
pub fn turn(lp: &EventLoop) {
    lp.run_once(Some(Duration::ZERO)).unwrap();
}

/// A shared log of what ran, in order.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// Counts how many of the values it hands out were dropped.
#[derive(Clone, Default)]
pub struct Drops(Rc<Cell<usize>>);

pub struct Tracked(Rc<Cell<usize>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

impl Drops {
    pub fn track(&self) -> Tracked {
        Tracked(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.get()
    }
}
