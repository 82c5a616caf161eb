//! `aio`: random 4 KiB reads from a file in the page cache, at queue depths 1 and 64, on
//! tulip's two engines (io_uring, the thread pool) against a blocking `pread` loop and against
//! tokio's way (`spawn_blocking` + `pread`, as `tokio::fs` does). One run of each, reads/s
//! and ratios.
//!
//! "Depth" is how many reads are outstanding at once: that many coroutines (tasks on tokio),
//! each reading, awaiting, and reading again at a new random block until the time is up. The
//! blocking loop has no depth: one thread, one read at a time.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tulip::aio::AioEngine;
use tulip::EventLoop;

use crate::machine::Machine;
use crate::prng::SplitMix64;

/// The size of one read.
const BLOCK: usize = 4096;

/// What to measure.
pub struct AioPlan {
    /// Size of the file read, in bytes.
    pub file_size: usize,
    /// How long each (runner, depth) pair reads in all.
    pub duration: Duration,
    /// In how many slices, the runners taking turns.
    pub rounds: u32,
    /// The queue depths.
    pub depths: Vec<usize>,
    /// The runners, by name.
    pub runners: Vec<&'static str>,
}

/// Every runner, in the order they run.
const RUNNERS: [&str; 6] = ["uring", "uring-vec", "ring", "pool", "blocking", "tokio"];

impl AioPlan {
    /// The full plan, or the one for CI; `only` keeps some runners, `depths` replaces 1
    /// and 64.
    ///
    /// # Errors
    /// A message naming an unknown runner.
    pub fn new(
        quick: bool,
        only: Option<&[String]>,
        depths: Option<Vec<usize>>,
    ) -> Result<AioPlan, String> {
        let runners = match only {
            None => RUNNERS.to_vec(),
            Some(names) => names
                .iter()
                .map(|name| {
                    RUNNERS
                        .into_iter()
                        .find(|r| r == name)
                        .ok_or_else(|| format!("unknown runner {name:?}: use {RUNNERS:?}"))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(AioPlan {
            file_size: if quick { 8 << 20 } else { 256 << 20 },
            duration: Duration::from_millis(if quick { 200 } else { 5000 }),
            rounds: if quick { 1 } else { 10 },
            depths: depths.unwrap_or_else(|| vec![1, 64]),
            runners,
        })
    }
}

/// One runner's figure.
struct Figure {
    runner: &'static str,
    depth: usize,
    reads: u64,
    elapsed: Duration,
    /// The CPU time of the thread that ran it (the loop's, the ring's, the blocking loop's):
    /// all of the work for those, which complete reads inline; not the pool's or tokio's,
    /// whose reads run on other threads.
    cpu: Duration,
}

impl Figure {
    fn per_second(&self) -> f64 {
        self.reads as f64 / self.elapsed.as_secs_f64()
    }

    /// Reads per second of the running thread's CPU time: unlike reads/s, not lowered by
    /// other programs taking the CPU away, so steadier on a shared machine. Only for the
    /// runners that read on their own thread.
    fn per_cpu_second(&self) -> Option<f64> {
        matches!(self.runner, "uring" | "uring-vec" | "ring" | "blocking")
            .then(|| self.reads as f64 / self.cpu.as_secs_f64())
    }
}

/// Measure and print the table.
pub fn run(plan: &AioPlan) -> io::Result<()> {
    let path = std::env::temp_dir().join(format!("tulip-bench-aio-{}", std::process::id()));
    let result = measure(plan, &path);
    let _ = std::fs::remove_file(&path);
    let figures = result?;
    print!("{}", markdown(plan, &figures));
    io::stdout().flush()
}

fn measure(plan: &AioPlan, path: &std::path::Path) -> io::Result<Vec<Figure>> {
    let mut rng = SplitMix64::new(13);
    let content: Vec<u8> = (0..plan.file_size).map(|_| rng.next_u64() as u8).collect();
    std::fs::write(path, &content)?;
    drop(content);
    let file = Arc::new(File::open(path)?);
    // Into the page cache: every runner then reads from memory.
    std::fs::read(path)?;
    let blocks = plan.file_size / BLOCK;
    let mut figures = Vec::new();
    // The runners take turns, a slice each per round, so that a noisy moment of a shared
    // machine falls on all of them alike; each figure sums its slices.
    let slice = plan.duration / plan.rounds;
    for &depth in &plan.depths {
        eprintln!("aio: depth {depth}, {} rounds", plan.rounds);
        let first = figures.len();
        for round in 0..plan.rounds {
            for (i, &runner) in plan.runners.iter().enumerate() {
                let file = &file;
                let cpu = tulip_sys::usage::thread_cpu_clock()?;
                let mut part = match runner {
                    "uring" => on_tulip(runner, AioEngine::Uring, file, blocks, depth, slice)?,
                    "uring-vec" => on_tulip(runner, AioEngine::Uring, file, blocks, depth, slice)?,
                    "pool" => on_tulip(runner, AioEngine::Pool, file, blocks, depth, slice)?,
                    "blocking" => blocking(file, blocks, depth, slice)?,
                    "ring" => raw_ring(file, blocks, depth, slice)?,
                    _ => on_tokio(file, blocks, depth, slice)?,
                };
                part.cpu = tulip_sys::usage::thread_cpu_clock()?.saturating_sub(cpu);
                if round == 0 {
                    figures.push(part);
                } else {
                    let sum = &mut figures[first + i];
                    sum.reads += part.reads;
                    sum.elapsed += part.elapsed;
                    sum.cpu += part.cpu;
                }
            }
        }
    }
    Ok(figures)
}

/// `depth` coroutines on a tulip loop, each awaiting `tulip::aio::read_into` in turn with
/// the buffer its previous read gave back (as the blocking loop reuses its buffer), or, for
/// `uring-vec`, `tulip::aio::read_at`, which allocates a new buffer for each read.
fn on_tulip(
    runner: &'static str,
    engine: AioEngine,
    file: &Arc<File>,
    blocks: usize,
    depth: usize,
    duration: Duration,
) -> io::Result<Figure> {
    let lp = EventLoop::new()?;
    lp.set_aio_depth(u32::try_from(depth.max(64)).unwrap_or(u32::MAX))?;
    lp.set_aio_engine(engine)?;
    let reads = Rc::new(Cell::new(0u64));
    let failure: Rc<Cell<Option<io::Error>>> = Rc::default();
    let started = Instant::now();
    let deadline = started + duration;
    let lanes: Vec<_> = (0..depth)
        .map(|lane| {
            let (file, reads, failure) = (Arc::clone(file), reads.clone(), failure.clone());
            lp.create_task(async move {
                let mut rng = SplitMix64::new(lane as u64 + 1);
                let mut buf = Vec::with_capacity(BLOCK);
                while Instant::now() < deadline {
                    let offset = (rng.below(blocks) * BLOCK) as u64;
                    let read = match runner {
                        "uring-vec" => tulip::aio::read_at(&file, offset, BLOCK),
                        _ => tulip::aio::read_into(&file, offset, std::mem::take(&mut buf)),
                    };
                    match read.await {
                        Ok(data) if data.len() == BLOCK => {
                            reads.set(reads.get() + 1);
                            buf = data;
                        }
                        Ok(data) => {
                            failure.set(Some(io::Error::other(format!(
                                "a read of {BLOCK} bytes at {offset} returned {}",
                                data.len()
                            ))));
                            return;
                        }
                        Err(e) => {
                            failure.set(Some(e));
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    lp.run_until(|_| lanes.iter().all(|t| t.done()))?;
    let elapsed = started.elapsed();
    if let Some(e) = failure.take() {
        return Err(e);
    }
    Ok(Figure {
        runner,
        depth,
        reads: reads.get(),
        elapsed,
        cpu: Duration::ZERO,
    })
}

/// tulip-sys's ring driven directly, with no loop, future or task: `depth` reads in flight,
/// topped up after each batch of completions, each completion's buffer reused. What the
/// io_uring engine costs without the loop's machinery.
fn raw_ring(
    file: &Arc<File>,
    blocks: usize,
    depth: usize,
    duration: Duration,
) -> io::Result<Figure> {
    use tulip_sys::uring::{Op, Ring};
    let mut ring: Ring<()> = Ring::new(u32::try_from(depth.max(64)).unwrap_or(u32::MAX))?;
    let mut rng = SplitMix64::new(1);
    let mut done = Vec::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut reads = 0;
    let started = Instant::now();
    while started.elapsed() < duration {
        while ring.in_flight() < depth {
            let offset = (rng.below(blocks) * BLOCK) as u64;
            let buf = match spare.pop() {
                Some(b) => b,
                None => Vec::with_capacity(BLOCK),
            };
            ring.push(
                Op::Read {
                    file: Arc::clone(file),
                    offset,
                    buf,
                },
                (),
            );
        }
        ring.submit()?;
        if ring.drain(&mut done) == 0 {
            ring.complete_all(&mut done)?;
        }
        for completion in done.drain(..) {
            if completion.result? != BLOCK {
                return Err(io::Error::other("a short read inside the file"));
            }
            spare.extend(completion.buf);
            reads += 1;
        }
    }
    let elapsed = started.elapsed();
    ring.complete_all(&mut done)?;
    Ok(Figure {
        runner: "ring",
        depth,
        reads,
        elapsed,
        cpu: Duration::ZERO,
    })
}

/// One thread calling `pread` in a loop: the floor.
fn blocking(file: &File, blocks: usize, depth: usize, duration: Duration) -> io::Result<Figure> {
    let mut rng = SplitMix64::new(1);
    let mut buf = vec![0u8; BLOCK];
    let mut reads = 0;
    let started = Instant::now();
    while started.elapsed() < duration {
        let offset = (rng.below(blocks) * BLOCK) as u64;
        if file.read_at(&mut buf, offset)? != BLOCK {
            return Err(io::Error::other("a short read inside the file"));
        }
        reads += 1;
    }
    Ok(Figure {
        runner: "blocking",
        depth,
        reads,
        elapsed: started.elapsed(),
        cpu: Duration::ZERO,
    })
}

/// `depth` tasks on tokio's current-thread runtime, each awaiting `spawn_blocking(pread)`:
/// what `tokio::fs::File` does for every read.
fn on_tokio(
    file: &Arc<File>,
    blocks: usize,
    depth: usize,
    duration: Duration,
) -> io::Result<Figure> {
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let reads = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    runtime.block_on(async {
        let lanes: Vec<_> = (0..depth)
            .map(|lane| {
                let (file, reads) = (Arc::clone(file), Arc::clone(&reads));
                tokio::spawn(async move {
                    let mut rng = SplitMix64::new(lane as u64 + 1);
                    while Instant::now() < deadline {
                        let offset = (rng.below(blocks) * BLOCK) as u64;
                        let file = Arc::clone(&file);
                        let read = tokio::task::spawn_blocking(move || {
                            let mut buf = vec![0u8; BLOCK];
                            file.read_at(&mut buf, offset).map(|n| {
                                buf.truncate(n);
                                buf
                            })
                        });
                        let data = read.await.map_err(io::Error::other)??;
                        if data.len() != BLOCK {
                            return Err(io::Error::other("a short read inside the file"));
                        }
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<(), io::Error>(())
                })
            })
            .collect();
        for lane in lanes {
            lane.await.map_err(io::Error::other)??;
        }
        Ok::<(), io::Error>(())
    })?;
    Ok(Figure {
        runner: "tokio",
        depth,
        reads: reads.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        cpu: Duration::ZERO,
    })
}

fn markdown(plan: &AioPlan, figures: &[Figure]) -> String {
    let machine = Machine::detect();
    let mut out = format!(
        "random {BLOCK}-byte reads of a {} MiB file in the page cache, {:.1} s per figure \
         in {} turns; {}, {} CPUs ({})\n\n",
        plan.file_size >> 20,
        plan.duration.as_secs_f64(),
        plan.rounds,
        machine.os,
        machine.cpus,
        machine.cpu_model
    );
    out +=
        "| depth | runner | reads/s | × tokio | × blocking | × pool | reads/CPU-s | × blocking |\n";
    out += "|--:|---|--:|--:|--:|--:|--:|--:|\n";
    for &depth in &plan.depths {
        let rate = |runner: &str| {
            figures
                .iter()
                .find(|f| f.depth == depth && f.runner == runner)
                .map_or(f64::NAN, Figure::per_second)
        };
        let (tokio, blocking, pool) = (rate("tokio"), rate("blocking"), rate("pool"));
        let blocking_cpu = figures
            .iter()
            .find(|f| f.depth == depth && f.runner == "blocking")
            .and_then(Figure::per_cpu_second);
        for figure in figures.iter().filter(|f| f.depth == depth) {
            let r = figure.per_second();
            let (per_cpu, cpu_ratio) = match (figure.per_cpu_second(), blocking_cpu) {
                (Some(c), Some(b)) => (format!("{c:.0}"), format!("{:.2}", c / b)),
                (Some(c), None) => (format!("{c:.0}"), "–".to_string()),
                _ => ("–".to_string(), "–".to_string()),
            };
            out += &format!(
                "| {depth} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {per_cpu} | {cpu_ratio} |\n",
                describe(figure.runner),
                r,
                r / tokio,
                r / blocking,
                r / pool
            );
        }
    }
    out
}

/// A runner's name as the table shows it.
fn describe(runner: &str) -> &str {
    match runner {
        "uring" => "tulip io_uring",
        "uring-vec" => "tulip io_uring, a new Vec per read",
        "ring" => "tulip-sys ring, no loop",
        "pool" => "tulip pool",
        "blocking" => "blocking pread loop",
        _ => "tokio spawn_blocking + pread",
    }
}
