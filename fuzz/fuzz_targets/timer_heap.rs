//! Fuzz target: the timer heap, through the loop's public API on a virtual clock, against a
//! `BTreeMap` keyed by (deadline, scheduling order). The fuzzer's bytes become `call_at`s
//! (whose callbacks may cancel another timer, and schedule a new one, when they fire),
//! `TimerHandle::cancel`s, clock advances and loop iterations; after each iteration the timers
//! that ran, in their order, and the loop's time must be what the map says. The public API
//! reaches every part of the timer queue (appends past the horizon, the sorted run and its
//! refill, the heap of timers scheduled before the horizon while the run drains, lazy deletion
//! of cancelled entries in each, compaction, `pop_due`, `next_deadline`), so it stays private.

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
    /// timer scheduled `cancels` (modulo their number), if any, then schedules a plain timer
    /// `then` ms after the loop's time, if any.
    Schedule {
        ahead: u8,
        cancels: Option<u16>,
        then: Option<u8>,
    },
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
    /// Live timers: (deadline, id) → what the callback cancels, and how far ahead it
    /// schedules a new timer.
    timers: BTreeMap<(Duration, usize), (Option<usize>, Option<u8>)>,
    deadlines: Vec<Duration>,
    cancelled: BTreeSet<usize>,
}

impl Model {
    /// Like `TimerHandle::cancel`: the timer does not run if it has not yet, and its handle
    /// says cancelled from then on, whether it had run or not (asyncio's `Handle.cancel`).
    fn cancel(&mut self, id: usize) {
        self.timers.remove(&(self.deadlines[id], id));
        self.cancelled.insert(id);
    }

    /// A new live timer, `ahead` after `now`, that cancels `cancels` and schedules a timer
    /// `then` after its own run; its id.
    fn schedule(&mut self, ahead: u8, cancels: Option<usize>, then: Option<u8>) -> usize {
        let id = self.deadlines.len();
        let when = self.now + Duration::from_millis(ahead.into());
        self.deadlines.push(when);
        self.timers.insert((when, id), (cancels, then));
        id
    }

    /// What an iteration runs: every live timer due at `now`, in (deadline, id) order, each
    /// possibly cancelling one after it. The timers they schedule are due in a later
    /// iteration at the earliest (the loop pops every due timer before running any), and get
    /// their ids in the order their parents ran.
    fn fire_due(&mut self) -> Vec<usize> {
        let mut ran = Vec::new();
        let mut scheduled = Vec::new();
        while let Some((&(when, id), &(cancels, then))) = self.timers.first_key_value() {
            if when > self.now {
                break;
            }
            self.timers.remove(&(when, id));
            ran.push(id);
            if let Some(victim) = cancels {
                self.cancel(victim);
            }
            scheduled.extend(then);
        }
        for ahead in scheduled {
            self.schedule(ahead, None, None);
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
            Op::Schedule {
                ahead,
                cancels,
                then,
            } => {
                let victim = cancels.map(|n| usize::from(n) % (model.deadlines.len() + 1));
                let id = model.schedule(ahead, victim, then);
                let when = model.deadlines[id];
                let (handles_in, ran_in) = (handles.clone(), ran.clone());
                let handle = lp
                    .call_at(when, move |lp| {
                        ran_in.borrow_mut().push(id);
                        if let Some(victim) = victim {
                            handles_in.borrow()[victim].cancel();
                        }
                        if let Some(then) = then {
                            let child = handles_in.borrow().len();
                            let ran_child = ran_in.clone();
                            let when = lp.time() + Duration::from_millis(then.into());
                            let handle = lp
                                .call_at(when, move |_| ran_child.borrow_mut().push(child))
                                .expect("call_at from a callback");
                            handles_in.borrow_mut().push(handle);
                        }
                    })
                    .expect("call_at on an open loop");
                assert_eq!(handle.when(), when);
                handles.borrow_mut().push(handle);
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
