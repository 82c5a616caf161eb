//! The Markdown report of an echo run: the machine, the pinning and the method first, then one
//! row per server (throughput and the server's CPU per round trip), then the ratios: tulip's
//! throughput against tokio's, and each runtime's CPU against the raw epoll floor's.

use std::fmt::Write;

use super::plan::Server;
use super::sample::Medians;
use super::EchoRun;
use crate::peers::{locked_version, ratio};
use crate::report::three_digits;

/// The workspace's lock file, read at build time for the tokio version measured.
const CARGO_LOCK: &str = include_str!("../../../Cargo.lock");

/// The whole report, ready for stdout (and for the README).
pub fn markdown(run: &EchoRun) -> String {
    let mut out = String::new();
    let plan = &run.plan;
    let tokio = locked_version(CARGO_LOCK, "tokio").unwrap_or("1");
    // `write!` to a String cannot fail.
    let _ = writeln!(out, "## Echo server: tulip vs tokio vs mio vs raw epoll\n");
    let _ = writeln!(
        out,
        "- Machine: {}; CPU: {} × {}",
        run.machine.os, run.machine.cpu_model, run.machine.cpus
    );
    let _ = writeln!(out, "- Pinning: {}", run.pinning);
    if let Some(c) = &run.contention {
        let _ = writeln!(
            out,
            "- Other processes took {:.0}% of CPU {} and {:.0}% of CPU {} while the samples ran \
             (`/proc/stat` less this run's own time; they slow every server alike, as the turns \
             interleave, but lower round trips/s)",
            c.server_others * 100.0,
            c.server_cpu,
            c.client_others * 100.0,
            c.client_cpu
        );
    }
    let _ = writeln!(
        out,
        "- Load: {c} connections on 127.0.0.1, each a closed loop of {s}-byte messages (send \
         one, read all {s} bytes back and check them, send the next), driven by one thread on \
         {best}; {d} ms per sample, after which the round trips in flight finish.",
        c = plan.connections,
        s = plan.size,
        best = tulip_sys::Backend::best(),
        d = plan.duration.as_millis()
    );
    let _ = writeln!(
        out,
        "- Servers, each a process of this binary (`tulip-bench echo-server`), a task per \
         connection reading into 16 KiB and writing it all back: tulip's `EventLoop` on \
         {backend} with `tulip::net` (tulip; tulip-uring: the same on the uring backend), and \
         its protocol style, `create_server` with an \
         echo `Protocol` (tulip-protocol); tokio {tokio}'s current-thread runtime \
         (`enable_all`, `tokio::spawn`); mio {mio}: one hand-written loop, edge-triggered, \
         each connection registered once for both directions; raw: one loop on the {best} \
         selector with non-blocking std sockets, level-triggered, one read and one write per \
         event.",
        backend = run.tulip_backend,
        best = tulip_sys::Backend::best(),
        mio = locked_version(CARGO_LOCK, "mio").unwrap_or("1"),
    );
    let _ = writeln!(
        out,
        "- Method: the servers take turns sample by sample (first one rotating), {} warm-up \
         and {} measured samples each; medians shown. Server CPU is `utime` and `stime` of \
         `/proc/PID/stat`, in ticks of 1/{} s, divided by the round trips of the sample \
         (\"1 tick\" is that step per round trip: the figures' resolution). \"server CPU\" and \
         \"load CPU\" are CPU time over wall time (100% = one CPU busy): with the load at 100% \
         and a server below, the load generator set the pace, and round trips/s compare it \
         rather than the servers (CPU per round trip still compares the servers).",
        plan.warmup, plan.samples, run.ticks_per_second
    );
    let _ = writeln!(out, "- Wall time: {:.1} s\n", run.wall.as_secs_f64());
    let _ = writeln!(
        out,
        "| server | round trips/s | user µs/rt | sys µs/rt | 1 tick µs/rt | server CPU | load CPU \
         | samples |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|");
    for result in &run.results {
        let _ = writeln!(out, "{}", server_row(result.server, &result.medians));
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| round trips/s tulip/tokio | user CPU tulip/mio | user CPU tulip-protocol/mio | \
         user CPU tokio/mio | user CPU tulip/raw | user CPU tulip-protocol/raw | \
         user CPU mio/raw | user+sys tulip/raw | user+sys tokio/raw |"
    );
    let _ = writeln!(out, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let _ = writeln!(out, "{}", ratio_row(run));
    let notes = caveats(run);
    if !notes.is_empty() {
        let _ = writeln!(out);
        for note in notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

/// Busy fraction below which a side is called idle part of the time.
const SATURATED: f64 = 0.9;

/// Clock ticks of user time per sample below which the user figure is called coarse.
const FEW_TICKS: f64 = 20.0;

/// What a reader should know before trusting the figures, one line per kind of doubt with the
/// servers it applies to: who set the pace where a server was not busy all the time, and user
/// times that span too few clock ticks.
fn caveats(run: &EchoRun) -> Vec<String> {
    let servers = |doubt: fn(&Medians) -> bool| -> Vec<&str> {
        run.results
            .iter()
            .filter(|r| doubt(&r.medians))
            .map(|r| r.server.name())
            .collect()
    };
    let taking_turns = servers(|m| m.server_busy < SATURATED && m.client_busy < SATURATED);
    let load_bound = servers(|m| m.server_busy < SATURATED && m.client_busy >= SATURATED);
    let coarse = servers(|m| m.user_us < FEW_TICKS * m.tick_us);
    let mut notes = Vec::new();
    if !taking_turns.is_empty() {
        notes.push(format!(
            "{}: neither server nor load was busy all the time (they took turns, or something \
             else had the CPUs), so round trips/s measure latency there, not capacity; CPU per \
             round trip still compares.",
            taking_turns.join(", ")
        ));
    }
    if !load_bound.is_empty() {
        notes.push(format!(
            "{}: the load generator, not the server, set the pace, so round trips/s compare the \
             load there; CPU per round trip still compares.",
            load_bound.join(", ")
        ));
    }
    if !coarse.is_empty() {
        notes.push(format!(
            "{}: user time spans fewer than {FEW_TICKS} clock ticks per sample, so user µs/rt is \
             good to about one tick (the \"1 tick\" column); the CSV's `*_pooled` figures, over \
             all samples, are finer, and so are longer samples (`--duration-ms`).",
            coarse.join(", ")
        ));
    }
    notes
}

fn server_row(server: Server, m: &Medians) -> String {
    format!(
        "| {} | {:.0} | {} | {} | {} | {:.0}% | {:.0}% | {} |",
        server.name(),
        m.trips_per_second,
        three_digits(m.user_us),
        three_digits(m.system_us),
        three_digits(m.tick_us),
        m.server_busy * 100.0,
        m.client_busy * 100.0,
        m.samples
    )
}

fn ratio_row(run: &EchoRun) -> String {
    let figure = |server, f: fn(&Medians) -> f64| run.medians(server).map(f);
    let user = |server| figure(server, |m| m.user_us);
    let total = |server| figure(server, |m| m.user_us + m.system_us);
    let throughput = |server| figure(server, |m| m.trips_per_second);
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        ratio(throughput(Server::Tulip), throughput(Server::Tokio)),
        ratio(user(Server::Tulip), user(Server::Mio)),
        ratio(user(Server::TulipProtocol), user(Server::Mio)),
        ratio(user(Server::Tokio), user(Server::Mio)),
        ratio(user(Server::Tulip), user(Server::Raw)),
        ratio(user(Server::TulipProtocol), user(Server::Raw)),
        ratio(user(Server::Mio), user(Server::Raw)),
        ratio(total(Server::Tulip), total(Server::Raw)),
        ratio(total(Server::Tokio), total(Server::Raw)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::tests::run_of;

    #[test]
    fn caveats_name_who_set_the_pace_and_coarse_user_time_with_their_servers() {
        let saturated = Medians {
            user_us: 0.3,
            tick_us: 0.01,
            server_busy: 0.98,
            client_busy: 0.97,
            ..Medians::default()
        };
        let taking_turns = Medians {
            server_busy: 0.5,
            client_busy: 0.5,
            ..saturated
        };
        let load_bound = Medians {
            server_busy: 0.6,
            client_busy: 1.0,
            ..saturated
        };
        let coarse = Medians {
            tick_us: 0.1,
            ..saturated
        };
        assert!(caveats(&run_of(&[(Server::Raw, saturated)])).is_empty());
        let notes = caveats(&run_of(&[
            (Server::Tulip, taking_turns),
            (Server::Tokio, load_bound),
            (Server::Raw, coarse),
        ]));
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].starts_with("tulip: ") && notes[0].contains("latency"));
        assert!(notes[1].starts_with("tokio: ") && notes[1].contains("load generator"));
        assert!(notes[2].starts_with("raw: ") && notes[2].contains("clock ticks"));
    }

    #[test]
    fn a_server_row_shows_throughput_cpu_per_trip_and_load() {
        let m = Medians {
            trips_per_second: 61234.4,
            user_us: 1.234,
            system_us: 12.34,
            client_us: 9.0,
            tick_us: 0.082,
            server_busy: 0.987,
            client_busy: 0.5,
            trips: 122_000.0,
            samples: 5,
        };
        assert_eq!(
            server_row(Server::Tokio, &m),
            "| tokio | 61234 | 1.23 | 12.3 | 0.08 | 99% | 50% | 5 |"
        );
    }
}
