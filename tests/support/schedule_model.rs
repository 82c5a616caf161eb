//! The specification of the loop's schedules as a small model, and the loop run on the same
//! programs: any program of `call_soon` / `call_later` / `call_at` / `cancel` / `stop`, where
//! callbacks run further such programs, must give the same [`Trace`] from both. FIFO callbacks,
//! timers in (deadline, scheduling) order, batches that exclude what they schedule, stop after
//! the batch, and time that jumps to the next live timer when nothing is ready.
//!
//! Shared by `event_loop_model.rs` (proptest) and the fuzz target `loop_schedules`, each with
//! `#[path = ".../support/schedule_model.rs"] mod schedule_model;`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use tulip::selectors::Backend;
use tulip::{EventLoop, Handle, LoopError, ManualClock, TimerHandle};

#[derive(Clone, Debug)]
pub enum Op {
    Soon(Vec<Op>),
    /// Delay in ms, then what the callback does.
    Later(u8, Vec<Op>),
    /// Absolute time in ms.
    At(u8, Vec<Op>),
    /// Cancel the n-th callback scheduled so far (modulo their number).
    Cancel(usize),
    Stop,
}

/// What an execution looks like from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trace {
    /// Callback `id` (numbered in scheduling order) ran at this time.
    Ran(usize, Duration),
    Stop,
    /// `run_until` returned.
    Returned,
}

fn ms(n: u8) -> Duration {
    Duration::from_millis(n.into())
}

// ---- the loop ----

enum AnyHandle {
    Soon(Handle),
    Timer(TimerHandle),
}

#[derive(Clone, Default)]
pub struct Real {
    trace: Rc<RefCell<Vec<Trace>>>,
    handles: Rc<RefCell<Vec<(usize, AnyHandle)>>>,
    live: Rc<RefCell<BTreeSet<usize>>>,
    next_id: Rc<Cell<usize>>,
}

impl Real {
    fn exec(&self, lp: &EventLoop, ops: &[Op]) {
        for op in ops {
            let id = self.next_id.get();
            let callback = |children: &Vec<Op>| {
                let (real, children) = (self.clone(), children.clone());
                move |lp: &EventLoop| {
                    real.trace.borrow_mut().push(Trace::Ran(id, lp.time()));
                    real.live.borrow_mut().remove(&id);
                    real.exec(lp, &children);
                }
            };
            let handle = match op {
                Op::Soon(children) => AnyHandle::Soon(lp.call_soon(callback(children)).unwrap()),
                Op::Later(d, children) => {
                    AnyHandle::Timer(lp.call_later(ms(*d), callback(children)).unwrap())
                }
                Op::At(w, children) => {
                    AnyHandle::Timer(lp.call_at(ms(*w), callback(children)).unwrap())
                }
                Op::Cancel(n) => {
                    let handles = self.handles.borrow();
                    if !handles.is_empty() {
                        let (victim, handle) = &handles[n % handles.len()];
                        match handle {
                            AnyHandle::Soon(h) => h.cancel(),
                            AnyHandle::Timer(h) => h.cancel(),
                        }
                        self.live.borrow_mut().remove(victim);
                    }
                    continue;
                }
                Op::Stop => {
                    self.trace.borrow_mut().push(Trace::Stop);
                    lp.stop();
                    continue;
                }
            };
            self.next_id.set(id + 1);
            self.live.borrow_mut().insert(id);
            self.handles.borrow_mut().push((id, handle));
        }
    }

    pub fn run(backend: Backend, program: &[Op]) -> Vec<Trace> {
        let lp = EventLoop::with_clock(backend, ManualClock::new()).unwrap();
        let real = Real::default();
        real.exec(&lp, program);
        loop {
            let live = real.live.clone();
            let result = lp.run_until(move |_| live.borrow().is_empty());
            real.trace.borrow_mut().push(Trace::Returned);
            match result {
                Ok(()) => break,
                Err(e) => assert_eq!(LoopError::of(&e), Some(LoopError::Stopped)),
            }
        }
        let trace = real.trace.borrow().clone();
        trace
    }
}

// ---- the model, written for clarity ----

#[derive(Default)]
pub struct Model {
    now: Duration,
    /// Ids in the ready queue, cancelled ones included (they still take a place in it).
    ready: VecDeque<usize>,
    /// (deadline, id) of timers not yet moved to the ready queue.
    timers: Vec<(Duration, usize)>,
    programs: Vec<Vec<Op>>,
    cancelled: BTreeSet<usize>,
    ran: BTreeSet<usize>,
    stopping: bool,
    trace: Vec<Trace>,
}

impl Model {
    fn live(&self, id: usize) -> bool {
        !self.cancelled.contains(&id) && !self.ran.contains(&id)
    }

    fn idle(&self) -> bool {
        !self.ready.iter().any(|&id| self.live(id))
            && !self.timers.iter().any(|&(_, id)| self.live(id))
    }

    fn exec(&mut self, ops: &[Op]) {
        for op in ops {
            let id = self.programs.len();
            match op {
                Op::Soon(_) => self.ready.push_back(id),
                Op::Later(d, _) => self.timers.push((self.now + ms(*d), id)),
                Op::At(w, _) => self.timers.push((ms(*w), id)),
                Op::Cancel(n) => {
                    if id > 0 {
                        self.cancelled.insert(n % id);
                    }
                    continue;
                }
                Op::Stop => {
                    self.trace.push(Trace::Stop);
                    self.stopping = true;
                    continue;
                }
            }
            let (Op::Soon(children) | Op::Later(_, children) | Op::At(_, children)) = op else {
                unreachable!("only scheduling ops reach here")
            };
            self.programs.push(children.clone());
        }
    }

    fn iterate(&mut self) {
        // Nothing ready and no stop pending: time jumps to the earliest live timer.
        if self.ready.is_empty() && !self.stopping {
            let earliest = self.timers.iter().filter(|t| self.live(t.1)).min();
            if let Some(&(when, _)) = earliest {
                self.now = self.now.max(when);
            }
        }
        // Due timers join the queue by (deadline, scheduling order); cancelled ones vanish.
        let mut due: Vec<(Duration, usize)> = self
            .timers
            .iter()
            .copied()
            .filter(|t| t.0 <= self.now)
            .collect();
        due.sort();
        self.timers.retain(|t| t.0 > self.now);
        for (_, id) in due {
            if self.live(id) {
                self.ready.push_back(id);
            }
        }
        // The batch: what is ready now, not what it schedules.
        for _ in 0..self.ready.len() {
            let id = self.ready.pop_front().expect("counted");
            if self.live(id) {
                self.ran.insert(id);
                self.trace.push(Trace::Ran(id, self.now));
                let program = self.programs[id].clone();
                self.exec(&program);
            }
        }
    }

    pub fn run(program: &[Op]) -> Vec<Trace> {
        let mut model = Model::default();
        model.exec(program);
        loop {
            if model.idle() {
                model.trace.push(Trace::Returned);
                return model.trace;
            }
            model.iterate();
            if model.stopping {
                model.stopping = false;
                model.trace.push(Trace::Returned);
                if model.idle() {
                    return model.trace;
                }
            }
        }
    }
}
