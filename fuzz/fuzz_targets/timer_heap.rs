//! Fuzz target: the timer heap, through the loop's public API on a virtual clock, against a
//! `BTreeMap` keyed by (deadline, scheduling order). The fuzzer's bytes become `call_at`s
//! (whose callbacks may cancel another timer when they fire), `TimerHandle::cancel`s, clock
//! advances and loop iterations; after each iteration the timers that ran, in their order, and
//! the loop's time must be what the map says. The public API reaches every part of the heap
//! (push, lazy deletion of cancelled entries, compaction, `pop_due`, `next_deadline`), so the
//! heap stays private.

#![no_main]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tulip::selectors::Backend;
use tulip::{EventLoop, ManualClock, TimerHandle};

const MAX_OPS: usize = 512;

#[derive(Arbitrary, Debug)]
enum Op {
    /// `call_at(now + ahead ms)` (0: due at once); when it fires, the callback cancels the
    /// timer scheduled `cancels` (modulo their number), if any.
    Schedule { ahead: u8, cancels: Option<u16> },
    /// Cancel the n-th timer scheduled so far (modulo their number).
    Cancel(u16),
    /// Move the clock forward by n ms, then one iteration that does not wait.
    AdvanceAndPoll(u8),
    /// One iteration that may wait: with nothing ready, time jumps to the earliest live timer.
    /// Only when the model has one (otherwise the loop would wait forever).
    RunOnce,
}

#[derive(Default)]
struct Model {
    now: Duration,
    /// Live timers: (deadline, id) → what the callback cancels.
    timers: BTreeMap<(Duration, usize), Option<usize>>,
    deadlines: Vec<Duration>,
    cancelled: BTreeSet<usize>,
}

impl Model {
    /// Like `TimerHandle::cancel`: counts as cancelled only if it had not run yet.
    fn cancel(&mut self, id: usize) {
        if self.timers.remove(&(self.deadlines[id], id)).is_some() {
            self.cancelled.insert(id);
        }
    }

    /// What an iteration runs: every live timer due at `now`, in (deadline, id) order, each
    /// possibly cancelling one after it.
    fn fire_due(&mut self) -> Vec<usize> {
        let mut ran = Vec::new();
        while let Some((&(when, id), &cancels)) = self.timers.first_key_value() {
            if when > self.now {
                break;
            }
            self.timers.remove(&(when, id));
            ran.push(id);
            if let Some(victim) = cancels {
                self.cancel(victim);
            }
        }
        ran
    }
}

fn run(ops: &[Op]) {
    let clock = ManualClock::new();
    // The heap is the same on every backend.
    let lp =
        EventLoop::with_clock(Backend::best(), clock.clone()).expect("a loop on a virtual clock");
    let handles: Rc<RefCell<Vec<TimerHandle>>> = Rc::default();
    let ran: Rc<RefCell<Vec<usize>>> = Rc::default();
    let mut model = Model::default();

    for op in ops {
        match *op {
            Op::Schedule { ahead, cancels } => {
                let id = model.deadlines.len();
                let when = model.now + Duration::from_millis(ahead.into());
                let victim = cancels.map(|n| usize::from(n) % (id + 1));
                let (handles_in, ran_in) = (handles.clone(), ran.clone());
                let handle = lp
                    .call_at(when, move |_| {
                        ran_in.borrow_mut().push(id);
                        if let Some(victim) = victim {
                            handles_in.borrow()[victim].cancel();
                        }
                    })
                    .expect("call_at on an open loop");
                assert_eq!(handle.when(), when);
                handles.borrow_mut().push(handle);
                model.deadlines.push(when);
                model.timers.insert((when, id), victim);
            }
            Op::Cancel(n) => {
                let count = model.deadlines.len();
                if count > 0 {
                    let id = usize::from(n) % count;
                    handles.borrow()[id].cancel();
                    model.cancel(id);
                }
            }
            Op::AdvanceAndPoll(ms) => {
                clock.advance(Duration::from_millis(ms.into()));
                model.now += Duration::from_millis(ms.into());
                lp.run_once(Some(Duration::ZERO)).expect("an iteration");
                let expected = model.fire_due();
                assert_eq!(std::mem::take(&mut *ran.borrow_mut()), expected);
            }
            Op::RunOnce => {
                let Some(&(earliest, _)) = model.timers.keys().next() else {
                    continue;
                };
                model.now = model.now.max(earliest);
                lp.run_once(None).expect("an iteration");
                let expected = model.fire_due();
                assert_eq!(std::mem::take(&mut *ran.borrow_mut()), expected);
            }
        }
        assert_eq!(lp.time(), model.now, "the loop's time");
    }
    // Once, at the end: after every step it would cost more than the rest of the run.
    for (id, handle) in handles.borrow().iter().enumerate() {
        assert_eq!(
            handle.cancelled(),
            model.cancelled.contains(&id),
            "timer {id}"
        );
    }
    // The callbacks hold the handles, which hold the callbacks: break the cycle.
    handles.borrow_mut().clear();
    lp.close().expect("the loop closes");
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    run(&ops);
});
