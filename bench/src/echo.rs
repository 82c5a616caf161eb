//! `echo`: a TCP echo server under load, six ways in one run: on tulip's loop in both styles
//! (coroutines, protocols) and, where io_uring is allowed, the coroutines on the uring backend;
//! on tokio's current-thread runtime, on mio (a hand-written loop on tokio's own layer), and
//! written straight on the epoll selector (the floor).
//!
//! Each server is a process of this binary (`tulip-bench echo-server --impl NAME --addr ADDR`,
//! see [`serve`]) pinned to one CPU, and this process, pinned to another, is the load: C
//! connections per server, each a closed loop of S-byte messages, every echoed byte checked
//! ([`load`]). All servers start first and keep their connections for the whole run; idle,
//! they sleep in the kernel. Then they take turns sample by sample, the first of each round
//! rotating, so that a slow phase of a noisy machine falls on all of them alike; the first
//! sample of each is a warm-up, and the report shows medians of the rest. A sample's cost is
//! the server's CPU time from `/proc/PID/stat` over the round trips the load completed; what
//! other processes took of the two CPUs meanwhile is measured too ([`contention`]).

mod contention;
mod csv;
mod load;
mod on_mio;
mod on_tokio;
mod on_tulip;
mod pinning;
mod plan;
mod proc_stat;
mod process;
mod raw_epoll;
mod report;
mod sample;

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tulip_sys::{fd, Backend};

use crate::machine::Machine;
use crate::progress::Progress;

pub use self::csv::write as write_csv;
pub use contention::Contention;
pub use plan::{EchoPlan, Server};
pub use report::markdown;
pub use sample::{pooled_us_per_trip, EchoSample, Medians};

use contention::Probe;
pub use load::Load;
use pinning::Pinning;
use proc_stat::ProcCpu;
use process::ServerProcess;

/// Everything one `echo` run found.
#[derive(Clone, Debug)]
pub struct EchoRun {
    /// Where it ran.
    pub machine: Machine,
    /// How the servers and the load were kept apart.
    pub pinning: Pinning,
    /// The share of the pinned CPUs that other processes took while the samples ran (none
    /// when unpinned).
    pub contention: Option<Contention>,
    /// What was run.
    pub plan: EchoPlan,
    /// The backend of tulip's loop (`TULIP_BACKEND`, else the best).
    pub tulip_backend: Backend,
    /// Clock ticks per second, the unit of the servers' CPU time.
    pub ticks_per_second: u64,
    /// One per server, in report order.
    pub results: Vec<ServerResult>,
    /// Wall time of the whole run.
    pub wall: Duration,
}

impl EchoRun {
    /// The medians of `server`, if it ran.
    pub fn medians(&self, server: Server) -> Option<&Medians> {
        self.results
            .iter()
            .find(|r| r.server == server)
            .map(|r| &r.medians)
    }
}

/// One server's measured samples and their medians.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerResult {
    /// Which server.
    pub server: Server,
    /// The measured samples (warm-up excluded), in the order taken.
    pub samples: Vec<EchoSample>,
    /// Their medians.
    pub medians: Medians,
}

/// Start every server of `plan`, connect the load to each, and take the samples.
///
/// # Errors
/// A server that does not start, stalls or echoes wrong bytes stops the run (see
/// [`Load::run`]); the servers are killed on the way out.
pub fn run(plan: &EchoPlan, progress: &mut Progress) -> io::Result<EchoRun> {
    let started = Instant::now();
    // Before pinning, which leaves this process one CPU to see.
    let machine = Machine::detect();
    // Before any thread exists, so that `taskset -a` catches them all.
    let pinning = Pinning::pin_this_process();
    let tulip_backend = Backend::from_env()?;
    let ticks_per_second = proc_stat::ticks_per_second();
    let exe = std::env::current_exe()?;
    // The servers inherit the limit: each needs one fd per connection, this process one per
    // connection to each server.
    let fds = plan.connections * plan.servers.len() + 64;
    fd::raise_nofile_limit(fds as u64)?;

    let mut servers = plan
        .servers
        .iter()
        .map(|&s| ServerProcess::start(s, &pinning, &exe))
        .collect::<io::Result<Vec<_>>>()?;
    let mut loads = servers
        .iter_mut()
        .map(|s| Load::connect(|| s.connect(), plan.connections, plan.size))
        .collect::<io::Result<Vec<_>>>()?;

    let step = format!("C={} S={}", plan.connections, plan.size);
    progress.start_step(&step);
    let probe = match pinning {
        Pinning::Pinned { server, client } => {
            Some(Probe::start(server, client, our_cpu(&servers)?)?)
        }
        Pinning::Unpinned(_) => None,
    };
    let samples = take_rounds(plan, &mut servers, &mut loads, ticks_per_second, progress)?;
    let contention = match probe {
        Some(probe) => Some(probe.finish(our_cpu(&servers)?)?),
        None => None,
    };
    let names: Vec<&str> = plan.servers.iter().map(|s| s.name()).collect();
    progress.finish_step(&step, &names.join(", "), started.elapsed());
    progress.finish(started.elapsed());
    drop(loads);
    drop(servers);

    Ok(EchoRun {
        machine,
        pinning,
        contention,
        plan: plan.clone(),
        tulip_backend,
        ticks_per_second,
        results: plan
            .servers
            .iter()
            .zip(samples)
            .map(|(&server, samples)| ServerResult {
                server,
                medians: Medians::of(&samples),
                samples,
            })
            .collect(),
        wall: started.elapsed(),
    })
}

/// Every round of samples: each server's turn once per round, the first rotating. Returns the
/// measured samples (warm-up dropped) per server, in `servers` order.
fn take_rounds(
    plan: &EchoPlan,
    servers: &mut [ServerProcess],
    loads: &mut [Load],
    ticks_per_second: u64,
    progress: &Progress,
) -> io::Result<Vec<Vec<EchoSample>>> {
    let mut samples: Vec<Vec<EchoSample>> = servers.iter().map(|_| Vec::new()).collect();
    for round in 0..plan.rounds() {
        for turn in 0..servers.len() {
            let i = (round + turn) % servers.len();
            let sample = take_sample(
                &mut servers[i],
                &mut loads[i],
                plan.duration,
                ticks_per_second,
            )?;
            if round >= plan.warmup {
                samples[i].push(sample);
            }
            progress.block_done();
        }
    }
    Ok(samples)
}

/// The CPU ticks this run has used so far: its servers' together, then this process's.
fn our_cpu(servers: &[ServerProcess]) -> io::Result<[ProcCpu; 2]> {
    let mut total = ProcCpu::default();
    for server in servers {
        let cpu = server.cpu()?;
        total.user += cpu.user;
        total.system += cpu.system;
    }
    Ok([total, proc_stat::read(std::process::id())?])
}

/// One sample: the server's CPU time around one run of the load.
fn take_sample(
    server: &mut ServerProcess,
    load: &mut Load,
    duration: Duration,
    ticks_per_second: u64,
) -> io::Result<EchoSample> {
    server.check_running()?;
    let before = server.cpu()?;
    let done = load.run(duration).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{} echo server: {e}", server.server().name()),
        )
    })?;
    let cpu = server.cpu()?.since(before);
    let ticks = |t| proc_stat::ticks_to_duration(t, ticks_per_second);
    Ok(EchoSample {
        trips: done.trips,
        wall: done.wall,
        user: ticks(cpu.user),
        system: ticks(cpu.system),
        client: done.cpu,
        tick: ticks(1),
    })
}

/// The hidden `echo-server` command: serve echo on `addr` as `server` until killed, or until
/// stdin reaches end-of-file (the bench that started this process is gone).
///
/// # Errors
/// Those of the server (binding `addr`, its runtime), and `TULIP_BACKEND` naming no backend.
pub fn serve(server: Server, addr: SocketAddr) -> io::Result<()> {
    // A thread that sleeps in `read` until the parent's end of the pipe closes: no CPU time.
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    match server {
        Server::Tulip => on_tulip::serve(addr, Backend::from_env()?),
        Server::TulipProtocol => on_tulip::serve_protocol(addr, Backend::from_env()?),
        Server::TulipUring => on_tulip::serve(addr, Backend::Uring),
        Server::Tokio => on_tokio::serve(addr),
        Server::Mio => on_mio::serve(addr),
        Server::Raw => raw_epoll::serve(addr),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run with the default plan and the given medians, for the report and CSV tests.
    pub fn run_of(results: &[(Server, Medians)]) -> EchoRun {
        EchoRun {
            machine: Machine::detect(),
            pinning: Pinning::Unpinned("test".into()),
            contention: None,
            plan: EchoPlan::new(&crate::cli::EchoArgs::default())
                .expect("the default plan is valid"),
            tulip_backend: Backend::best(),
            ticks_per_second: 100,
            results: results
                .iter()
                .map(|&(server, medians)| ServerResult {
                    server,
                    samples: Vec::new(),
                    medians,
                })
                .collect(),
            wall: Duration::from_secs(1),
        }
    }

    /// Run `server` on a thread (not through [`serve`], whose stdin watch would end the test
    /// process) on a free port.
    fn serving(server: Server) -> SocketAddr {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        std::thread::spawn(move || match server {
            Server::Tulip => on_tulip::serve(addr, Backend::best()),
            Server::TulipProtocol => on_tulip::serve_protocol(addr, Backend::best()),
            Server::TulipUring => on_tulip::serve(addr, Backend::Uring),
            Server::Tokio => on_tokio::serve(addr),
            Server::Mio => on_mio::serve(addr),
            Server::Raw => raw_epoll::serve(addr),
        });
        addr
    }

    fn connect_retrying(addr: SocketAddr) -> io::Result<std::net::TcpStream> {
        let began = Instant::now();
        loop {
            match std::net::TcpStream::connect(addr) {
                Err(_) if began.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                result => return result,
            }
        }
    }

    #[test]
    fn every_server_echoes_small_messages_and_ones_larger_than_its_buffers_intact() {
        for server in Server::ALL {
            if server == Server::TulipUring && !Backend::Uring.is_available() {
                println!("skipped: {}", Backend::Uring.open().map(drop).unwrap_err());
                continue;
            }
            let addr = serving(server);
            // 200 kB: more than a read buffer and than a socket's send buffer, so writes are
            // partial and the raw server keeps leftovers.
            for size in [64, 200_000] {
                let mut load = Load::connect(|| connect_retrying(addr), 4, size).unwrap();
                let sample = load.run(Duration::from_millis(30)).unwrap();
                assert!(
                    sample.trips >= 4,
                    "{} at {size} B: {sample:?}",
                    server.name()
                );
            }
        }
    }

    #[test]
    fn ratios_compare_tulip_with_tokio_mio_and_the_floor() {
        let m = |tps, user_us, system_us| Medians {
            trips_per_second: tps,
            user_us,
            system_us,
            ..Medians::default()
        };
        let run = run_of(&[
            (Server::Tulip, m(60_000.0, 2.6, 10.0)),
            (Server::TulipProtocol, m(60_000.0, 2.4, 10.0)),
            (Server::Tokio, m(50_000.0, 4.0, 10.0)),
            (Server::Mio, m(65_000.0, 2.4, 9.0)),
            (Server::Raw, m(70_000.0, 2.0, 8.0)),
        ]);
        let report = markdown(&run);
        assert!(
            report.contains("| 1.20 | 1.08 | 1.00 | 1.67 | 1.30 | 1.20 | 1.20 | 1.26 | 1.40 |"),
            "{report}"
        );
        let without_raw = run_of(&[(Server::Tulip, m(1.0, 1.0, 1.0))]);
        assert!(markdown(&without_raw).contains("| – | – | – | – | – | – | – | – | – |"));
    }
}
