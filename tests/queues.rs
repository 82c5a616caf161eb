//! asyncio's queues: the behaviours CPython's `test_queues.py` checks (bounds, the `*_nowait`
//! errors, order, `task_done` / `join`, shutdown, and cancellation at every waiting point: no
//! item lost or duplicated, no wake-up lost), and a property test of a queue under random
//! puts, gets and cancellations against a `VecDeque` model. No I/O: on the virtual clock.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

use proptest::prelude::*;
use tulip::selectors::Backend;
use tulip::{EventLoop, LifoQueue, ManualClock, PriorityQueue, Queue, QueueError, Task};

#[path = "support/observe.rs"]
mod observe;
use observe::{turn, Drops, Log};

fn virtual_loop() -> EventLoop {
    EventLoop::with_clock(Backend::best(), ManualClock::new()).unwrap()
}

fn settle(lp: &EventLoop) {
    for _ in 0..10 {
        turn(lp);
    }
}

/// Run iterations until one runs nothing: every wake-up has been acted on.
fn until_idle(lp: &EventLoop) {
    loop {
        let before = lp.stats().callbacks_run;
        turn(lp);
        if lp.stats().callbacks_run == before {
            return;
        }
    }
}

/// A task that gets one item from `queue` and logs it with `name`.
fn getter(lp: &EventLoop, queue: &Queue<u32>, log: &Log, name: &str) -> Task<()> {
    let (queue, log, name) = (queue.clone(), log.clone(), name.to_string());
    lp.create_task(async move {
        match queue.get().await {
            Ok(item) => log.push(format!("{name} got {item}")),
            Err(e) => log.push(format!("{name}: {e}")),
        }
    })
}

/// A task that puts `item` into `queue` and logs it.
fn putter(lp: &EventLoop, queue: &Queue<u32>, log: &Log, item: u32) -> Task<()> {
    let (queue, log) = (queue.clone(), log.clone());
    lp.create_task(async move {
        match queue.put(item).await {
            Ok(()) => log.push(format!("put {item}")),
            Err(e) => log.push(format!("put {item}: {}", e.error())),
        }
    })
}

/// The items left in `queue`, taken out.
fn drain(queue: &Queue<u32>) -> Vec<u32> {
    std::iter::from_fn(|| queue.get_nowait().ok()).collect()
}

#[test]
fn a_bounded_queue_makes_put_wait_while_full_and_get_wait_while_empty() {
    let lp = virtual_loop();
    let queue = Queue::new(2);
    let log = Log::default();
    assert_eq!(
        (queue.maxsize(), queue.empty(), queue.full()),
        (2, true, false)
    );
    for item in 1..=3 {
        putter(&lp, &queue, &log, item);
    }
    settle(&lp);
    assert_eq!(log.take(), ["put 1", "put 2"]);
    assert!(queue.full() && queue.qsize() == 2);
    getter(&lp, &queue, &log, "a");
    settle(&lp);
    assert_eq!(log.take(), ["a got 1", "put 3"]);
    assert_eq!(drain(&queue), [2, 3]);
    getter(&lp, &queue, &log, "b");
    settle(&lp);
    assert!(log.take().is_empty(), "get waits on an empty queue");
    queue.put_nowait(9).unwrap();
    settle(&lp);
    assert_eq!(log.take(), ["b got 9"]);
}

#[test]
fn nowait_calls_fail_with_full_and_empty_and_a_refused_put_gives_the_item_back() {
    let queue = Queue::new(1);
    assert_eq!(queue.get_nowait(), Err(QueueError::Empty));
    queue.put_nowait(String::from("kept")).unwrap();
    let refused = queue.put_nowait(String::from("refused")).unwrap_err();
    assert_eq!(refused.error(), QueueError::Full);
    assert_eq!(refused.into_item(), "refused");
    let err: io::Error = queue.put_nowait(String::new()).unwrap_err().into();
    assert_eq!(QueueError::of(&err), Some(QueueError::Full));
    assert_eq!(queue.get_nowait().unwrap(), "kept");
    let unbounded = Queue::new(0);
    for n in 0..10_000 {
        unbounded.put_nowait(n).unwrap();
    }
    assert!(!unbounded.full(), "maxsize 0 is unbounded");
}

#[test]
fn getters_are_served_in_arrival_order() {
    let lp = virtual_loop();
    let queue = Queue::new(0);
    let log = Log::default();
    for name in ["a", "b", "c"] {
        getter(&lp, &queue, &log, name);
    }
    settle(&lp);
    for item in [1, 2, 3] {
        queue.put_nowait(item).unwrap();
    }
    settle(&lp);
    assert_eq!(log.take(), ["a got 1", "b got 2", "c got 3"]);
}

#[test]
fn putters_are_served_in_arrival_order() {
    let lp = virtual_loop();
    let queue = Queue::new(1);
    let log = Log::default();
    queue.put_nowait(0).unwrap();
    for item in [1, 2, 3] {
        putter(&lp, &queue, &log, item);
    }
    settle(&lp);
    assert!(log.take().is_empty());
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(queue.get_nowait().unwrap());
        settle(&lp);
    }
    assert_eq!(got, [0, 1, 2, 3]);
    assert_eq!(log.take(), ["put 1", "put 2", "put 3"]);
}

#[test]
fn a_get_cancelled_after_its_wake_up_leaves_the_item_for_the_next_getter() {
    // CPython's test_cancelled_getters_not_being_held_in_self_getters / test_get_cancelled_race.
    let lp = virtual_loop();
    let queue = Queue::new(0);
    let log = Log::default();
    let first = getter(&lp, &queue, &log, "first");
    let second = getter(&lp, &queue, &log, "second");
    settle(&lp);
    queue.put_nowait(7).unwrap();
    first.cancel();
    settle(&lp);
    assert!(first.cancelled() && second.done());
    assert_eq!(
        log.take(),
        ["second got 7"],
        "the item was neither lost nor duplicated"
    );
    assert!(queue.empty());
}

#[test]
fn a_get_cancelled_after_its_wake_up_passes_it_on_while_another_getter_is_woken_too() {
    // CPython's test_get_cancel_drop_many_pending_readers: two items wake two of three
    // getters; the first is cancelled before it runs, and the third takes its item.
    let lp = virtual_loop();
    let queue = Queue::new(0);
    let log = Log::default();
    let readers: Vec<_> = ["r1", "r2", "r3"]
        .iter()
        .map(|name| getter(&lp, &queue, &log, name))
        .collect();
    settle(&lp);
    queue.put_nowait(1).unwrap();
    queue.put_nowait(2).unwrap();
    readers[0].cancel();
    settle(&lp);
    assert!(readers[0].cancelled() && readers[1].done() && readers[2].done());
    let mut got = log.take();
    got.sort();
    assert_eq!(got, ["r2 got 1", "r3 got 2"]);
    assert!(queue.empty());
}

#[test]
fn a_get_cancelled_before_any_item_leaves_the_line() {
    let lp = virtual_loop();
    let queue = Queue::new(0);
    let log = Log::default();
    let cancelled = getter(&lp, &queue, &log, "cancelled");
    let kept = getter(&lp, &queue, &log, "kept");
    settle(&lp);
    cancelled.cancel();
    settle(&lp);
    queue.put_nowait(1).unwrap();
    settle(&lp);
    assert!(kept.done());
    assert_eq!(log.take(), ["kept got 1"]);
}

#[test]
fn a_cancelled_put_inserts_nothing_and_passes_its_free_slot_on() {
    // CPython's test_put_cancelled_race.
    let lp = virtual_loop();
    let queue = Queue::new(1);
    let log = Log::default();
    queue.put_nowait(0).unwrap();
    let first = putter(&lp, &queue, &log, 1);
    let second = putter(&lp, &queue, &log, 2);
    settle(&lp);
    assert_eq!(queue.get_nowait(), Ok(0));
    first.cancel();
    settle(&lp);
    assert!(first.cancelled() && second.done());
    assert_eq!(log.take(), ["put 2"]);
    assert_eq!(drain(&queue), [2], "nothing of the cancelled put");
}

#[test]
fn a_cancelled_put_drops_its_item() {
    let lp = virtual_loop();
    let queue = Queue::new(1);
    let drops = Drops::default();
    queue.put_nowait(drops.track()).unwrap();
    let q = queue.clone();
    let item = drops.track();
    let blocked = lp.create_task(async move { q.put(item).await.is_ok() });
    settle(&lp);
    assert_eq!(drops.count(), 0);
    blocked.cancel();
    settle(&lp);
    assert_eq!((drops.count(), queue.qsize()), (1, 1));
}

#[test]
fn join_waits_until_every_item_put_is_marked_done() {
    let lp = virtual_loop();
    let queue = Queue::new(0);
    let log = Log::default();
    let q = queue.clone();
    let l = log.clone();
    let joiner = lp.create_task(async move {
        q.join().await;
        l.push("joined");
    });
    settle(&lp);
    assert!(joiner.done(), "nothing was put: join returns at once");
    log.take();
    for item in [1, 2] {
        queue.put_nowait(item).unwrap();
    }
    let (q, l) = (queue.clone(), log.clone());
    lp.create_task(async move {
        q.join().await;
        l.push("joined");
    });
    drain(&queue);
    settle(&lp);
    assert!(
        log.take().is_empty(),
        "taking items out is not processing them"
    );
    queue.task_done().unwrap();
    settle(&lp);
    assert!(log.take().is_empty());
    queue.task_done().unwrap();
    settle(&lp);
    assert_eq!(log.take(), ["joined"]);
    let err = queue.task_done().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "task_done() called too many times");
}

#[test]
fn shutdown_fails_puts_and_lets_getters_drain_the_queue_then_fail() {
    let lp = virtual_loop();
    let queue = Queue::new(1);
    let log = Log::default();
    queue.put_nowait(1).unwrap();
    let blocked = putter(&lp, &queue, &log, 2);
    settle(&lp);
    queue.shutdown(false);
    settle(&lp);
    assert!(blocked.done() && queue.is_shut_down());
    assert_eq!(log.take(), ["put 2: the queue is shut down"]);
    assert_eq!(
        queue.put_nowait(3).unwrap_err().error(),
        QueueError::ShutDown
    );
    for name in ["a", "b"] {
        getter(&lp, &queue, &log, name);
    }
    settle(&lp);
    assert_eq!(log.take(), ["a got 1", "b: the queue is shut down"]);
    assert_eq!(queue.get_nowait(), Err(QueueError::ShutDown));
}

#[test]
fn a_shutdown_that_is_not_immediate_keeps_the_items_and_join_waits_for_them() {
    // CPython's test_shutdown_nonempty.
    let lp = virtual_loop();
    let queue = Queue::new(1);
    let log = Log::default();
    queue.put_nowait(1).unwrap();
    let (q, l) = (queue.clone(), log.clone());
    let joiner = lp.create_task(async move {
        q.join().await;
        l.push("joined");
    });
    putter(&lp, &queue, &log, 2);
    settle(&lp);
    queue.shutdown(false);
    settle(&lp);
    assert_eq!(log.take(), ["put 2: the queue is shut down"]);
    assert_eq!(queue.qsize(), 1);
    assert_eq!(queue.get_nowait(), Ok(1));
    assert_eq!(queue.get_nowait(), Err(QueueError::ShutDown));
    settle(&lp);
    assert!(!joiner.done(), "the item taken out is not processed yet");
    queue.task_done().unwrap();
    settle(&lp);
    assert_eq!(log.take(), ["joined"]);
    assert!(queue.task_done().is_err(), "every item is done");
}

#[test]
fn shutdown_wakes_waiting_getters_to_fail() {
    let lp = virtual_loop();
    let queue = Queue::new(0);
    let log = Log::default();
    let waiting: Vec<_> = ["a", "b"]
        .iter()
        .map(|n| getter(&lp, &queue, &log, n))
        .collect();
    settle(&lp);
    queue.shutdown(false);
    settle(&lp);
    assert!(waiting.iter().all(Task::done));
    assert_eq!(
        log.take(),
        ["a: the queue is shut down", "b: the queue is shut down"]
    );
}

#[test]
fn an_immediate_shutdown_drops_the_items_left_and_releases_join() {
    let lp = virtual_loop();
    let queue = Queue::new(0);
    let log = Log::default();
    for item in [1, 2, 3] {
        queue.put_nowait(item).unwrap();
    }
    assert_eq!(queue.get_nowait(), Ok(1));
    let (q, l) = (queue.clone(), log.clone());
    lp.create_task(async move {
        q.join().await;
        l.push("joined");
    });
    settle(&lp);
    queue.shutdown(true);
    settle(&lp);
    assert!(queue.empty());
    assert!(
        log.take().is_empty(),
        "the item taken out is still unprocessed"
    );
    queue.task_done().unwrap();
    settle(&lp);
    assert_eq!(log.take(), ["joined"]);
    assert_eq!(queue.get_nowait(), Err(QueueError::ShutDown));
}

#[test]
fn an_immediate_shutdown_fails_waiting_putters_and_leaves_nothing_to_mark_done() {
    // CPython's test_shutdown_immediate, with a putter waiting on a full queue.
    let lp = virtual_loop();
    let queue = Queue::new(1);
    let log = Log::default();
    queue.put_nowait(1).unwrap();
    let blocked = putter(&lp, &queue, &log, 2);
    let (q, l) = (queue.clone(), log.clone());
    let joiner = lp.create_task(async move {
        q.join().await;
        l.push("joined");
    });
    settle(&lp);
    assert!(!blocked.done() && !joiner.done());
    queue.shutdown(true);
    settle(&lp);
    assert!(blocked.done() && joiner.done());
    assert_eq!(log.take(), ["joined", "put 2: the queue is shut down"]);
    assert_eq!(queue.qsize(), 0);
    assert_eq!(queue.get_nowait(), Err(QueueError::ShutDown));
    assert_eq!(
        queue.task_done().unwrap_err().kind(),
        io::ErrorKind::InvalidInput,
        "the dropped item counted as done"
    );
}

#[test]
fn lifo_and_priority_queues_give_items_back_in_their_order() {
    let lifo: LifoQueue<u32> = Queue::lifo(0);
    let priority: PriorityQueue<(u8, &str)> = Queue::priority(0);
    for n in [1, 2, 3] {
        lifo.put_nowait(n).unwrap();
    }
    for entry in [(3, "low"), (1, "high"), (2, "mid")] {
        priority.put_nowait(entry).unwrap();
    }
    let lifo_order: Vec<u32> = std::iter::from_fn(|| lifo.get_nowait().ok()).collect();
    let priority_order: Vec<&str> =
        std::iter::from_fn(|| priority.get_nowait().ok().map(|(_, s)| s)).collect();
    assert_eq!(lifo_order, [3, 2, 1]);
    assert_eq!(priority_order, ["high", "mid", "low"]);
}

#[test]
fn a_bounded_producer_and_consumer_pass_every_item_in_order() {
    let lp = virtual_loop();
    let queue = Queue::new(3);
    let producer = queue.clone();
    lp.create_task(async move {
        for n in 0..1000u32 {
            producer.put(n).await?;
        }
        producer.shutdown(false);
        io::Result::Ok(())
    });
    let got = lp
        .run_until_complete(async move {
            let mut got = Vec::new();
            while let Ok(n) = queue.get().await {
                got.push(n);
            }
            got
        })
        .unwrap();
    assert_eq!(got, (0..1000).collect::<Vec<u32>>());
}

/// One step of the property test's program.
#[derive(Clone, Debug)]
enum Op {
    PutNowait,
    GetNowait,
    /// A task that awaits a put.
    Put,
    /// A task that awaits a get.
    Get,
    /// Cancel the i-th putter task (modulo how many there are).
    CancelPutter(usize),
    /// Cancel the i-th getter task.
    CancelGetter(usize),
    /// One loop iteration.
    Turn,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::PutNowait),
        2 => Just(Op::GetNowait),
        3 => Just(Op::Put),
        3 => Just(Op::Get),
        2 => any::<usize>().prop_map(Op::CancelPutter),
        2 => any::<usize>().prop_map(Op::CancelGetter),
        4 => Just(Op::Turn),
    ]
}

/// What went in and came out of the queue, in the order it happened.
#[derive(Default)]
struct Journal {
    inserted: Vec<u32>,
    removed: Vec<u32>,
}

type Shared = Rc<RefCell<Journal>>;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Whatever puts, gets and cancellations happen, the queue behaves as a `VecDeque` fed by
    /// the puts that succeeded: items come out in the order they went in, none is lost or
    /// duplicated, a cancelled put inserts nothing, the bound holds; and once the loop is
    /// idle no waiter sleeps while it could go on (no lost wake-up).
    #[test]
    fn a_queue_under_random_puts_gets_and_cancellations_matches_a_vecdeque(
        maxsize in 0usize..4,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let lp = virtual_loop();
        let queue: Queue<u32> = Queue::new(maxsize);
        let journal: Shared = Rc::default();
        let mut model: VecDeque<u32> = VecDeque::new();
        let mut putters: Vec<Task<()>> = Vec::new();
        let mut getters: Vec<Task<()>> = Vec::new();
        let mut next_item = 0u32;
        let check = |queue: &Queue<u32>, journal: &Shared, model: &mut VecDeque<u32>| {
            let mut journal = journal.borrow_mut();
            for item in journal.inserted.drain(..) {
                model.push_back(item);
            }
            for item in journal.removed.drain(..) {
                prop_assert_eq!(model.pop_front(), Some(item), "FIFO order, no duplicate");
            }
            prop_assert_eq!(queue.qsize(), model.len());
            prop_assert!(maxsize == 0 || queue.qsize() <= maxsize);
            Ok(())
        };
        for op in ops {
            match op {
                Op::PutNowait => {
                    let item = next_item;
                    next_item += 1;
                    match queue.put_nowait(item) {
                        Ok(()) => journal.borrow_mut().inserted.push(item),
                        Err(e) => {
                            prop_assert_eq!(e.error(), QueueError::Full);
                            prop_assert!(queue.full());
                        }
                    }
                }
                Op::GetNowait => match queue.get_nowait() {
                    Ok(item) => journal.borrow_mut().removed.push(item),
                    Err(e) => {
                        prop_assert_eq!(e, QueueError::Empty);
                        prop_assert!(queue.empty());
                    }
                },
                Op::Put => {
                    let item = next_item;
                    next_item += 1;
                    let (q, j) = (queue.clone(), journal.clone());
                    putters.push(lp.create_task(async move {
                        if q.put(item).await.is_ok() {
                            j.borrow_mut().inserted.push(item);
                        }
                    }));
                }
                Op::Get => {
                    let (q, j) = (queue.clone(), journal.clone());
                    getters.push(lp.create_task(async move {
                        if let Ok(item) = q.get().await {
                            j.borrow_mut().removed.push(item);
                        }
                    }));
                }
                Op::CancelPutter(i) if !putters.is_empty() => {
                    putters[i % putters.len()].cancel();
                }
                Op::CancelGetter(i) if !getters.is_empty() => {
                    getters[i % getters.len()].cancel();
                }
                Op::CancelPutter(_) | Op::CancelGetter(_) => {}
                Op::Turn => turn(&lp),
            }
            check(&queue, &journal, &mut model)?;
        }
        until_idle(&lp);
        check(&queue, &journal, &mut model)?;
        let waiting_getters = getters.iter().filter(|t| !t.done()).count();
        let waiting_putters = putters.iter().filter(|t| !t.done()).count();
        prop_assert!(
            waiting_getters == 0 || queue.empty(),
            "{} getters wait while {} items are queued", waiting_getters, queue.qsize()
        );
        prop_assert!(
            waiting_putters == 0 || queue.full(),
            "{} putters wait while the queue has room", waiting_putters
        );
    }
}
