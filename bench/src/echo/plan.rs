//! What `echo` runs: which servers, how many connections with which message size, and how
//! long and how often each server is sampled.

use std::time::Duration;

use crate::cli::EchoArgs;

/// One echo server under test, each run as its own process of this binary
/// (`tulip-bench echo-server --impl NAME`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Server {
    /// Coroutines on tulip's `EventLoop`: `tulip::net::TcpListener` and a task per connection,
    /// on `TULIP_BACKEND` (else the best backend, epoll on Linux).
    Tulip,
    /// Tulip's callback style: `create_server` with a `Protocol` per connection.
    TulipProtocol,
    /// The coroutine server (`tulip`) on the `uring` backend, next to it on epoll (only where
    /// io_uring is allowed; left out of the default run elsewhere).
    TulipUring,
    /// The same on tokio's current-thread runtime.
    Tokio,
    /// A hand-written loop on mio (tokio's own layer), edge-triggered.
    Mio,
    /// A hand-written loop on the epoll selector with non-blocking std sockets: the floor.
    Raw,
}

impl Server {
    /// Every server, in report order.
    pub const ALL: [Server; 6] = [
        Server::Tulip,
        Server::TulipProtocol,
        Server::TulipUring,
        Server::Tokio,
        Server::Mio,
        Server::Raw,
    ];

    /// The name the command line, the report and the CSV use.
    pub const fn name(self) -> &'static str {
        match self {
            Server::Tulip => "tulip",
            Server::TulipProtocol => "tulip-protocol",
            Server::TulipUring => "tulip-uring",
            Server::Tokio => "tokio",
            Server::Mio => "mio",
            Server::Raw => "raw",
        }
    }

    /// The server called `name`.
    ///
    /// # Errors
    /// A message naming the unknown server and the known ones.
    pub fn from_name(name: &str) -> Result<Server, String> {
        Server::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Server::ALL.iter().map(|s| s.name()).collect();
                format!("no echo server {name:?} (known: {})", known.join(", "))
            })
    }
}

/// The load and the repetitions of one `echo` run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoPlan {
    /// `--quick`: short samples, few of them, few connections.
    pub quick: bool,
    /// The servers measured, in report order.
    pub servers: Vec<Server>,
    /// Client connections per server, each a closed loop with one message in flight.
    pub connections: usize,
    /// Bytes per message.
    pub size: usize,
    /// How long the load runs per sample (connections then finish their round trip in flight).
    pub duration: Duration,
    /// Samples per server thrown away first.
    pub warmup: usize,
    /// Samples per server kept; the report shows their median.
    pub samples: usize,
}

/// Bytes per message unless `--size` says otherwise: a small request, as in most echo
/// benchmarks, so that the per-message cost of the loop is what is measured, not copying.
pub const DEFAULT_SIZE: usize = 64;

/// The largest `--size`: the load generator keeps a pattern table this big.
pub const MAX_SIZE: usize = 16 << 20;

impl EchoPlan {
    /// The default plan (about a minute: 3 s samples, long enough for the 10 ms clock ticks the
    /// servers' CPU time is counted in) or the quick one for CI (a few seconds), with the
    /// options of `args` applied.
    ///
    /// # Errors
    /// A message for an unknown server name or a size above [`MAX_SIZE`].
    pub fn new(args: &EchoArgs) -> Result<EchoPlan, String> {
        let quick = args.quick;
        let mut plan = EchoPlan {
            quick,
            servers: Server::ALL
                .into_iter()
                .filter(|&s| s != Server::TulipUring || tulip_sys::Backend::Uring.is_available())
                .collect(),
            connections: if quick { 10 } else { 50 },
            size: DEFAULT_SIZE,
            duration: Duration::from_millis(if quick { 300 } else { 3_000 }),
            warmup: 1,
            samples: if quick { 3 } else { 5 },
        };
        if let Some(names) = &args.servers {
            let wanted = names
                .iter()
                .map(|n| Server::from_name(n))
                .collect::<Result<Vec<_>, _>>()?;
            plan.servers.retain(|s| wanted.contains(s));
        }
        if let Some(c) = args.connections {
            plan.connections = c;
        }
        if let Some(size) = args.size {
            if size > MAX_SIZE {
                return Err(format!("--size: {size} is above the maximum, {MAX_SIZE}"));
            }
            plan.size = size;
        }
        if let Some(ms) = args.duration_ms {
            plan.duration = Duration::from_millis(ms as u64);
        }
        if let Some(k) = args.samples {
            plan.samples = k;
        }
        Ok(plan)
    }

    /// Samples taken per server, warm-up included.
    pub fn rounds(&self) -> usize {
        self.warmup + self.samples
    }

    /// Every sample the run takes, for the progress bar.
    pub fn total_samples(&self) -> usize {
        self.servers.len() * self.rounds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_is_shorter_and_smaller_than_the_default() {
        let quick = EchoPlan::new(&EchoArgs {
            quick: true,
            ..EchoArgs::default()
        })
        .unwrap();
        let full = EchoPlan::new(&EchoArgs::default()).unwrap();
        assert!(quick.duration < full.duration);
        assert!(quick.total_samples() < full.total_samples());
        assert!(quick.connections < full.connections);
        assert!(
            full.duration >= Duration::from_secs(1),
            "ticks need long samples"
        );
    }

    #[test]
    fn options_override_the_defaults_and_servers_keep_report_order() {
        let plan = EchoPlan::new(&EchoArgs {
            servers: Some(vec!["raw".into(), "tulip".into()]),
            connections: Some(7),
            size: Some(1000),
            duration_ms: Some(250),
            samples: Some(2),
            ..EchoArgs::default()
        })
        .unwrap();
        assert_eq!(plan.servers, vec![Server::Tulip, Server::Raw]);
        assert_eq!((plan.connections, plan.size, plan.samples), (7, 1000, 2));
        assert_eq!(plan.duration, Duration::from_millis(250));
    }

    #[test]
    fn unknown_servers_and_huge_sizes_are_refused() {
        let args = EchoArgs {
            servers: Some(vec!["nginx".into()]),
            ..EchoArgs::default()
        };
        assert!(EchoPlan::new(&args).is_err());
        let args = EchoArgs {
            size: Some(MAX_SIZE + 1),
            ..EchoArgs::default()
        };
        assert!(EchoPlan::new(&args).is_err());
    }
}
