//! `tulip-bench`: tulip's benchmarks. `compare` measures every selector backend of this machine
//! on libevent's classic workload (N socket fds, A active per round) and prints a Markdown
//! table; `peers` measures tulip's loop against tokio's current-thread runtime; `echo` puts a
//! TCP echo server on tulip, on tokio and on raw epoll under load; `check-csv` verifies
//! `compare`'s CSV in CI; `faults` puts the loop through the faults of the README's
//! "Reliability" section and prints one checked figure each.
//!
//! ```text
//! cargo run --release -p tulip-bench -- compare [--quick] [--n 10,100,1000,10000]
//!                                               [--csv PATH] [--svg PATH] [--rounds K]
//! cargo run --release -p tulip-bench -- peers [--quick] [--csv PATH]
//! cargo run --release -p tulip-bench -- echo [--quick] [--connections C] [--size S] [--csv PATH]
//! cargo run --release -p tulip-bench -- aio [--quick] [--only uring,uring-vec,ring,pool,blocking,tokio] [--depths 1,64]
//! cargo run --release -p tulip-bench -- faults [--quick] [--backend NAME] [--only LIST]
//! cargo run --release -p tulip-bench -- memory [--n 10000,100000] [--connections 5000] [--only timers,tasks,connections]
//! cargo run --release -p tulip-bench -- check-csv PATH
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aio;
mod check;
mod cli;
mod compare;
mod compare_csv;
mod echo;
mod faults;
mod limits;
mod machine;
mod memory;
mod metric;
mod peers;
mod plan;
mod plot;
mod prng;
mod progress;
mod raw_syscall;
mod report;
mod stats;
mod workload;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use cli::{Command, CompareArgs, EchoArgs, EchoLoadArgs, EchoServerArgs, MemoryArgs, PeersArgs};
use plan::Plan;

/// Counts this binary's allocations per thread, for the memory figures of `peers` and `echo`
/// (a thread-local add per call: no atomics, no lock).
#[global_allocator]
static ALLOCATOR: tulip_sys::alloc_count::Counting = tulip_sys::alloc_count::Counting;
use progress::Progress;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("tulip-bench: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            println!("{}", cli::USAGE);
            Ok(())
        }
        Command::Compare(args) => compare(&args),
        Command::Peers(args) => peers(&args),
        Command::Echo(args) => echo(&args),
        Command::EchoServer(args) => echo_server(&args),
        Command::EchoLoad(args) => echo_load(&args),
        Command::Aio {
            quick,
            only,
            depths,
        } => aio::AioPlan::new(quick, only.as_deref(), depths)
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))
            .and_then(|plan| aio::run(&plan)),
        Command::Faults(args) => {
            faults_ctx(&args).and_then(|ctx| faults::run(&ctx, args.only.as_deref()))
        }
        Command::FaultsChild { role, args } => {
            faults_ctx(&args).and_then(|ctx| faults::child(&role, &ctx))
        }
        Command::Memory(args) => memory(&args),
        Command::CheckCsv(path) => check_csv(&path.to_string_lossy()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tulip-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `compare`: measure, print the table, write the CSV and the plot if asked.
fn compare(args: &CompareArgs) -> io::Result<()> {
    let default_ns = if args.quick {
        &plan::QUICK_NS[..]
    } else {
        &plan::DEFAULT_NS[..]
    };
    let plan = Plan {
        ns: args.ns.clone().unwrap_or_else(|| default_ns.to_vec()),
        rounds: args.rounds,
        quick: args.quick,
    };
    let cases = plan.cases();
    let blocks = cases.iter().map(|c| plan.blocks(c.n)).sum();
    let mut progress = Progress::new(blocks, cases.len());
    let comparison = compare::run(&plan, &mut progress)?;
    print!("{}", report::markdown(&comparison));
    io::stdout().flush()?;
    if let Some(path) = &args.csv {
        let mut out = BufWriter::new(create(path)?);
        compare_csv::write_rows(&mut out, compare_csv::rows(&comparison.measurements))?;
        out.flush()?;
        eprintln!("compare: wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        plot::write_svg(path, &comparison.measurements, &comparison.backends)?;
        eprintln!("compare: wrote {}", path.display());
    }
    Ok(())
}

/// `peers`: measure tulip and tokio, print the table, write the CSV if asked.
fn peers(args: &PeersArgs) -> io::Result<()> {
    let mut plan = peers::PeerPlan::new(args.quick);
    if let Some(names) = &args.only {
        plan = plan
            .only(names)
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
    }
    let mut progress = Progress::named("peers", plan.total_samples(), plan.workloads.len());
    let run = peers::run(&plan, &mut progress)?;
    print!("{}", peers::markdown(&run));
    let n = if args.quick { 1_000 } else { 100_000 };
    let footprints = [
        memory::tulip_timers(n)?,
        memory::tokio_timers(n)?,
        memory::tulip_tasks(n)?,
        memory::tokio_tasks(n)?,
    ];
    println!(
        "\n### Memory per pending timer and per idle task\n\nLive heap bytes of the measuring \
         thread (a counting global allocator) after creating N, less before, over N; an idle \
         task has been polled once and is parked.\n"
    );
    print!("{}", memory::markdown(&footprints));
    io::stdout().flush()?;
    if let Some(path) = &args.csv {
        let mut out = BufWriter::new(create(path)?);
        peers::write_csv(&mut out, &run)?;
        out.flush()?;
        eprintln!("peers: wrote {}", path.display());
    }
    Ok(())
}

/// `echo`: start the servers, measure, print the table, write the CSV if asked.
fn echo(args: &EchoArgs) -> io::Result<()> {
    let plan =
        echo::EchoPlan::new(args).map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
    let mut progress = Progress::named("echo", plan.total_samples(), 1);
    let run = echo::run(&plan, &mut progress)?;
    print!("{}", echo::markdown(&run));
    let n = if args.quick { 100 } else { 5_000 };
    tulip_sys::fd::raise_nofile_limit(2 * n as u64 + 64)?;
    let footprints = [
        memory::tulip_connections(memory::Style::Protocol, n)?,
        memory::tulip_connections(memory::Style::CoroutineBuffer, n)?,
        memory::tulip_connections(memory::Style::CoroutineLean, n)?,
        memory::tokio_connections(n)?,
    ];
    println!(
        "\n### Memory per idle connection\n\nIn this process, one style at a time: N clients \
         connect one by one and make one 1-byte round trip each, then the server's thread \
         counts its live heap bytes (a counting global allocator) against before, over N. \
         Kernel socket buffers are not included.\n"
    );
    print!("{}", memory::markdown(&footprints));
    io::stdout().flush()?;
    if let Some(path) = &args.csv {
        let mut out = BufWriter::new(create(path)?);
        echo::write_csv(&mut out, &run)?;
        out.flush()?;
        eprintln!("echo: wrote {}", path.display());
    }
    Ok(())
}

/// `memory`: the memory figures of `peers` and `echo` alone, for the N asked.
fn memory(args: &MemoryArgs) -> io::Result<()> {
    const KINDS: [&str; 3] = ["timers", "tasks", "connections"];
    let only = args
        .only
        .clone()
        .unwrap_or_else(|| KINDS.map(String::from).to_vec());
    if let Some(unknown) = only.iter().find(|k| !KINDS.contains(&k.as_str())) {
        let why = format!("memory: unknown kind {unknown:?} (timers, tasks, connections)");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    }
    let wants = |kind: &str| only.iter().any(|k| k == kind);
    let ns = args.ns.clone().unwrap_or_else(|| vec![100_000]);
    let connections = args.connections.clone().unwrap_or_else(|| vec![5_000]);
    let mut footprints = Vec::new();
    for &n in &ns {
        if wants("timers") {
            footprints.push(memory::tulip_timers(n)?);
            footprints.push(memory::tokio_timers(n)?);
        }
        if wants("tasks") {
            footprints.push(memory::tulip_tasks(n)?);
            footprints.push(memory::tokio_tasks(n)?);
        }
    }
    if wants("connections") {
        let most = connections.iter().copied().max().unwrap_or(0);
        tulip_sys::fd::raise_nofile_limit(2 * most as u64 + 64)?;
        for &n in &connections {
            footprints.push(memory::tulip_connections(memory::Style::Protocol, n)?);
            footprints.push(memory::tulip_connections(
                memory::Style::CoroutineBuffer,
                n,
            )?);
            footprints.push(memory::tulip_connections(memory::Style::CoroutineLean, n)?);
            footprints.push(memory::tokio_connections(n)?);
        }
    }
    print!("{}", memory::markdown(&footprints));
    io::stdout().flush()
}

/// `echo-server` (run by `echo`): serve until killed.
fn echo_server(args: &EchoServerArgs) -> io::Result<()> {
    let server = echo::Server::from_name(&args.implementation)
        .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
    echo::serve(server, args.addr)
}

/// `echo-load`: `echo`'s load on one server for a while; prints the round trips done.
fn echo_load(args: &EchoLoadArgs) -> io::Result<()> {
    let connect = || std::net::TcpStream::connect(args.addr);
    let mut load = echo::Load::connect(connect, args.connections, args.size)?;
    let sample = load.run(std::time::Duration::from_millis(args.duration_ms as u64))?;
    println!("round trips: {}", sample.trips);
    Ok(())
}

/// Create `path`, with its directory if missing, naming it in the error.
fn create(path: &std::path::Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    File::create(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// What `faults` and `faults-child` run with: the backend named, or the best one.
fn faults_ctx(args: &cli::FaultsArgs) -> io::Result<faults::Ctx> {
    let backend = match &args.backend {
        Some(name) => name.parse::<tulip::selectors::Backend>()?,
        None => tulip::selectors::Backend::best(),
    };
    if !backend.is_available() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("backend {backend} is not available on this OS"),
        ));
    }
    Ok(faults::Ctx {
        backend,
        quick: args.quick,
    })
}

/// `check-csv`: print one line per backend, or fail.
fn check_csv(path: &str) -> io::Result<()> {
    for line in check::run(path)? {
        println!("check-csv: {line}");
    }
    println!("check-csv: {path} has results for every backend of this machine");
    Ok(())
}
