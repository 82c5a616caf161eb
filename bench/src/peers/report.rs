//! The Markdown report of a peer run: the machine and the method first, then one row per
//! workload with tulip's and tokio's cost per op and their ratio, then the ping-pong's user and
//! system CPU against the raw epoll loop.

use std::fmt::Write;

use super::plan::{
    Runner, Workload, BATCH, QUEUE_BOUND, SWITCH_TASKS, TIMER_EARLIEST, TIMER_SPREAD,
};
use super::{PeerRun, PerOp, WorkloadResult};
use crate::report::{dash, three_digits};

/// The workspace's lock file, read at build time for the tokio version measured.
const CARGO_LOCK: &str = include_str!("../../../Cargo.lock");

/// The whole report, ready for stdout (and for the README).
pub fn markdown(run: &PeerRun) -> String {
    let mut out = String::new();
    let tokio = locked_version(CARGO_LOCK, "tokio").unwrap_or("1");
    let plan = &run.plan;
    // `write!` to a String cannot fail.
    let _ = writeln!(out, "## tulip vs tokio\n");
    let _ = writeln!(
        out,
        "- Machine: {}; CPU: {} × {}",
        run.machine.os, run.machine.cpu_model, run.machine.cpus
    );
    let _ = writeln!(
        out,
        "- tulip: `EventLoop` on {backend}. tokio {tokio}: \
         `Builder::new_current_thread().enable_all()`, tasks spawned with `spawn_local` on a \
         `LocalSet` (tulip's tasks are not `Send` either); mio's epoll underneath.",
        backend = tulip_sys::Backend::best()
    );
    let _ = writeln!(
        out,
        "- Method: the runners take turns sample by sample (first one rotating), {} warm-up \
         and {} measured samples each, every sample on a fresh loop or runtime built untimed; \
         medians shown. Cost is the bench thread's CPU time per op \
         (`CLOCK_THREAD_CPUTIME_ID`; both runtimes run on that thread alone): the same as wall \
         time where nothing waits (the CSV has both), and for timers it leaves out the wait \
         for the deadlines. The ping-pong's user/system split comes from \
         `getrusage(RUSAGE_THREAD)`, which moves in clock ticks, so it is pooled over all \
         measured samples instead.",
        plan.warmup, plan.samples
    );
    let _ = writeln!(out, "- Workloads:");
    for line in workload_lines() {
        let _ = writeln!(out, "  - {line}");
    }
    let _ = writeln!(out, "- Wall time: {:.1} s\n", run.wall.as_secs_f64());
    let _ = writeln!(
        out,
        "| workload | one op | ops per sample | tulip ns/op | tokio ns/op | tulip/tokio |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|");
    for result in &run.results {
        let _ = writeln!(out, "{}", main_row(result));
    }
    if let Some(pp) = run
        .results
        .iter()
        .find(|r| r.workload == Workload::PingPong)
    {
        let _ = writeln!(
            out,
            "\nPing-pong CPU per round trip ({} samples of {} round trips pooled):\n",
            run.plan.samples, pp.ops
        );
        let _ = writeln!(
            out,
            "| CPU per round trip | tulip µs | tokio µs | raw epoll µs | tulip/raw | tokio/raw |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|");
        let _ = writeln!(out, "{}", cpu_row(pp, "user", |p| p.user_ns));
        let _ = writeln!(out, "{}", cpu_row(pp, "system", |p| p.system_ns));
    }
    out
}

/// What each workload does, one sentence each, with tokio's analogue.
fn workload_lines() -> Vec<String> {
    vec![
        format!(
            "`call_soon`: callbacks that add one to a shared `Rc<Cell>` counter, {BATCH} \
             scheduled at a time, then run. tokio has no callback queue; its closest analogue \
             is a `spawn_local` task whose whole body is the callback (the batch ends by \
             awaiting its last task); `tokio::spawn` with an atomic counter was slower when \
             tried (169 vs 120 ns/op on the machine of bench/results/peers.md)."
        ),
        format!(
            "`timers`: `call_later` with pseudo-random delays of {}–{} ms, every other timer \
             then cancelled, the rest fired. tokio: a task per timer doing `sleep(delay)` \
             (all polled once, so in the wheel, before any cancel), cancelled by `abort()`.",
            TIMER_EARLIEST.as_millis(),
            (TIMER_EARLIEST + TIMER_SPREAD).as_millis()
        ),
        format!(
            "`spawn`: {BATCH} tasks returning a number spawned from a coroutine \
             (`tulip::spawn` / `spawn_local`), then each awaited; one op = spawn + complete."
        ),
        format!(
            "`switch`: {SWITCH_TASKS} tasks each looping on `yield_now().await` (both \
             runtimes make one zero-timeout poll of the selector per round of ready tasks); \
             one op = one yield."
        ),
        "`ping_pong`: two tasks bounce one byte over two pipes with each runtime's pipe \
         types: `write_all` on tulip's `net::PipeWriter` / tokio's `pipe::Sender`, then \
         `read_exact` on `net::PipeReader` / `pipe::Receiver` (each keeping its read end \
         registered while it lives): each read is tried, and on `WouldBlock` waits. The raw \
         floor does the same round trips in one straight loop on the epoll selector, both \
         read ends registered once (write, `select`, read, twice)."
            .to_string(),
        format!(
            "`queue`: a producer task puts numbers into a queue bounded to {QUEUE_BOUND} \
             items, and the measured coroutine gets them and checks their order. tulip: \
             `tulip::Queue` (`put` / `get`); tokio: `tokio::sync::mpsc::channel` (`send` / \
             `recv`); one op = one item through."
        ),
        "`lock`: one task acquires and releases a lock nobody else wants, adding one to a \
         counter while it holds it. tulip: `tulip::Lock` (`acquire().await`, the guard \
         dropped); tokio: `tokio::sync::Mutex` (`lock().await`); one op = acquire + release."
            .to_string(),
    ]
}

fn main_row(result: &WorkloadResult) -> String {
    let tulip = result.of(Runner::Tulip).map(|p| p.cpu_ns);
    let tokio = result.of(Runner::Tokio).map(|p| p.cpu_ns);
    format!(
        "| {} | {} | {} | {} | {} | {} |",
        result.workload.name(),
        result.workload.op(),
        result.ops,
        tulip.map_or_else(dash, three_digits),
        tokio.map_or_else(dash, three_digits),
        ratio(tulip, tokio)
    )
}

fn cpu_row(result: &WorkloadResult, label: &str, part: fn(&PerOp) -> f64) -> String {
    let us = |runner| result.of(runner).map(|p| part(p) / 1000.0);
    let (tulip, tokio, raw) = (us(Runner::Tulip), us(Runner::Tokio), us(Runner::Raw));
    format!(
        "| {label} | {} | {} | {} | {} | {} |",
        tulip.map_or_else(dash, three_digits),
        tokio.map_or_else(dash, three_digits),
        raw.map_or_else(dash, three_digits),
        ratio(tulip, raw),
        ratio(tokio, raw)
    )
}

/// `a / b` with two decimals (below 1: `a` is cheaper), or a dash if either is missing or `b`
/// is zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => format!("{:.2}", a / b),
        _ => dash(),
    }
}

/// The version of `package` that `lock` (a `Cargo.lock`) pins, if it has exactly one.
pub fn locked_version<'a>(lock: &'a str, package: &str) -> Option<&'a str> {
    let name_line = format!("name = \"{package}\"");
    let mut found = lock
        .split("[[package]]")
        .filter(|block| block.lines().any(|l| l.trim() == name_line))
        .filter_map(|block| {
            block.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("version = \"")
                    .and_then(|v| v.strip_suffix('"'))
            })
        });
    let version = found.next()?;
    found.next().is_none().then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_has_two_decimals_and_dashes_for_what_is_missing() {
        assert_eq!(ratio(Some(25.0), Some(100.0)), "0.25");
        assert_eq!(ratio(Some(130.0), Some(100.0)), "1.30");
        assert_eq!(ratio(Some(1.0), Some(3.0)), "0.33");
        assert_eq!(ratio(None, Some(1.0)), "–");
        assert_eq!(ratio(Some(1.0), None), "–");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "–");
    }

    #[test]
    fn main_row_shows_both_costs_and_their_ratio() {
        let per_op = |cpu_ns| PerOp {
            cpu_ns,
            ..PerOp::default()
        };
        let result = WorkloadResult {
            workload: Workload::CallSoon,
            ops: 1000,
            runners: vec![(Runner::Tulip, per_op(20.0)), (Runner::Tokio, per_op(61.4))],
        };
        assert_eq!(
            main_row(&result),
            "| call_soon | callback | 1000 | 20.0 | 61.4 | 0.33 |"
        );
    }

    #[test]
    fn cpu_row_compares_with_the_raw_loop_in_microseconds() {
        let per_op = |user_ns| PerOp {
            user_ns,
            ..PerOp::default()
        };
        let result = WorkloadResult {
            workload: Workload::PingPong,
            ops: 10,
            runners: vec![
                (Runner::Tulip, per_op(1300.0)),
                (Runner::Tokio, per_op(2000.0)),
                (Runner::Raw, per_op(1000.0)),
            ],
        };
        assert_eq!(
            cpu_row(&result, "user", |p| p.user_ns),
            "| user | 1.30 | 2.00 | 1.00 | 1.30 | 2.00 |"
        );
    }

    #[test]
    fn locked_version_reads_the_one_pinned_version() {
        let lock = "version = 4\n\n[[package]]\nname = \"tokio\"\nversion = \"1.54.1\"\n\n\
                    [[package]]\nname = \"tokio-macros\"\nversion = \"2.5.0\"\n";
        assert_eq!(locked_version(lock, "tokio"), Some("1.54.1"));
        assert_eq!(locked_version(lock, "mio"), None);
        let twice = format!("{lock}\n[[package]]\nname = \"tokio\"\nversion = \"0.2.0\"\n");
        assert_eq!(locked_version(&twice, "tokio"), None);
    }
}
