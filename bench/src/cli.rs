//! The command line: `tulip-bench <command> [options]`, parsed by hand (a few commands do not
//! need a framework).

use std::net::SocketAddr;
use std::path::PathBuf;

/// What to print for `help` and after a usage error.
pub const USAGE: &str = "\
usage: tulip-bench <command> [options]

commands:
  compare [--quick] [--n 10,100,1000,10000] [--rounds K] [--csv PATH] [--svg PATH]
      measure every selector backend of this machine on N socket fds with A = 1 and
      A = N/10 active per round; Markdown table on stdout, progress on stderr
      --quick      N = 10, 100, 1000 and few rounds: seconds instead of minutes
      --n LIST     the N to measure, comma-separated
      --rounds K   measured rounds per backend and case (default: by N)
      --csv PATH   also write one row per backend × N × A × metric
      --svg PATH   also plot time per select against N (log–log)
  peers [--quick] [--only LIST] [--csv PATH]
      tulip's loop against tokio's current-thread runtime on call_soon, timers, task
      spawn, task switch and a pipe ping-pong (also against a raw epoll loop), in one
      run; Markdown table on stdout, progress on stderr
      --quick      smaller and fewer samples: seconds instead of a minute
      --only LIST  only these workloads, comma-separated (call_soon, timers, spawn,
                   switch, ping_pong): for profiling one of them
      --csv PATH   also write one row per workload × runner × metric
  echo [--quick] [--connections C] [--size S] [--duration-ms MS] [--samples K]
       [--servers LIST] [--csv PATH]
      a TCP echo server on tulip, on tokio's current-thread runtime and on a raw epoll
      loop, each its own process pinned to one CPU, under a closed-loop load from
      another; round trips/s and server CPU per round trip, Markdown table on stdout
      --quick           10 connections, 0.3 s samples, 3 of them: seconds, for CI
      --connections C   client connections per server (default 50)
      --size S          bytes per message (default 64)
      --duration-ms MS  load per sample (default 3000; CPU time moves in 10 ms ticks)
      --samples K       measured samples per server (default 5), after one warm-up
      --servers LIST    only these, comma-separated (tulip, tokio, raw)
      --csv PATH        also write one row per server × metric
  check-csv PATH
      exit non-zero unless the CSV has results for every backend of this machine
  help
      print this";

/// Options of `compare`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompareArgs {
    /// `--quick`.
    pub quick: bool,
    /// `--n`, if given.
    pub ns: Option<Vec<usize>>,
    /// `--rounds`, if given.
    pub rounds: Option<usize>,
    /// `--csv`, if given.
    pub csv: Option<PathBuf>,
    /// `--svg`, if given.
    pub svg: Option<PathBuf>,
}

/// Options of `peers`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeersArgs {
    /// `--quick`.
    pub quick: bool,
    /// `--only`, if given: workload names, checked against the known ones by `peers`.
    pub only: Option<Vec<String>>,
    /// `--csv`, if given.
    pub csv: Option<PathBuf>,
}

/// Options of `echo`; what is not given is the plan's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EchoArgs {
    /// `--quick`.
    pub quick: bool,
    /// `--connections`, if given.
    pub connections: Option<usize>,
    /// `--size`, if given.
    pub size: Option<usize>,
    /// `--duration-ms`, if given.
    pub duration_ms: Option<usize>,
    /// `--samples`, if given.
    pub samples: Option<usize>,
    /// `--servers`, if given: names, checked against the known ones by `echo`.
    pub servers: Option<Vec<String>>,
    /// `--csv`, if given.
    pub csv: Option<PathBuf>,
}

/// Options of the hidden `echo-server` command, which `echo` runs as its servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoServerArgs {
    /// `--impl`: the server's name, checked by `echo`.
    pub implementation: String,
    /// `--addr`: where to listen.
    pub addr: SocketAddr,
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Compare the backends.
    Compare(CompareArgs),
    /// Compare tulip with tokio.
    Peers(PeersArgs),
    /// Measure the echo servers.
    Echo(EchoArgs),
    /// Be one echo server (hidden: `echo` starts these).
    EchoServer(EchoServerArgs),
    /// Check a CSV written by `compare --csv`.
    CheckCsv(PathBuf),
    /// Print the usage.
    Help,
}

/// Parse the arguments after the program name.
///
/// # Errors
/// A message saying what was wrong (unknown command or option, missing or bad value).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    match args.next().as_deref() {
        None | Some("help" | "--help" | "-h") => Ok(Command::Help),
        Some("compare") => parse_compare(args).map(Command::Compare),
        Some("peers") => parse_peers(args).map(Command::Peers),
        Some("echo") => parse_echo(args).map(Command::Echo),
        Some("echo-server") => parse_echo_server(args).map(Command::EchoServer),
        Some("check-csv") => match (args.next(), args.next()) {
            (Some(path), None) => Ok(Command::CheckCsv(path.into())),
            _ => Err("check-csv takes exactly one PATH".to_string()),
        },
        Some(other) => Err(format!("unknown command {other:?}")),
    }
}

/// Walk `args` as options: `handle` gets each option's name and a way to take its value,
/// written either `--opt value` or `--opt=value`.
fn parse_options(
    mut args: impl Iterator<Item = String>,
    mut handle: impl FnMut(&str, &mut dyn FnMut(&str) -> Result<String, String>) -> Result<(), String>,
) -> Result<(), String> {
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs {what}"))
        };
        handle(&name, &mut value)?;
    }
    Ok(())
}

fn parse_compare(args: impl Iterator<Item = String>) -> Result<CompareArgs, String> {
    let mut parsed = CompareArgs::default();
    parse_options(args, |name, value| {
        match name {
            "--quick" => parsed.quick = true,
            "--n" => parsed.ns = Some(parse_ns(&value("a list of N")?)?),
            "--rounds" => parsed.rounds = Some(parse_count(&value("a count")?, "--rounds")?),
            "--csv" => parsed.csv = Some(value("a PATH")?.into()),
            "--svg" => parsed.svg = Some(value("a PATH")?.into()),
            _ => return Err(format!("unknown option {name:?} for compare")),
        }
        Ok(())
    })?;
    Ok(parsed)
}

fn parse_peers(args: impl Iterator<Item = String>) -> Result<PeersArgs, String> {
    let mut parsed = PeersArgs::default();
    parse_options(args, |name, value| {
        match name {
            "--quick" => parsed.quick = true,
            "--only" => {
                let list = value("a list of workloads")?;
                parsed.only = Some(list.split(',').map(|w| w.trim().to_string()).collect());
            }
            "--csv" => parsed.csv = Some(value("a PATH")?.into()),
            _ => return Err(format!("unknown option {name:?} for peers")),
        }
        Ok(())
    })?;
    Ok(parsed)
}

fn parse_echo(args: impl Iterator<Item = String>) -> Result<EchoArgs, String> {
    let mut parsed = EchoArgs::default();
    parse_options(args, |name, value| {
        let mut count = |what| parse_count(&value(what)?, name).map(Some);
        match name {
            "--quick" => parsed.quick = true,
            "--connections" => parsed.connections = count("a count")?,
            "--size" => parsed.size = count("a size in bytes")?,
            "--duration-ms" => parsed.duration_ms = count("milliseconds")?,
            "--samples" => parsed.samples = count("a count")?,
            "--servers" => {
                let list = value("a list of servers")?;
                parsed.servers = Some(list.split(',').map(|w| w.trim().to_string()).collect());
            }
            "--csv" => parsed.csv = Some(value("a PATH")?.into()),
            _ => return Err(format!("unknown option {name:?} for echo")),
        }
        Ok(())
    })?;
    Ok(parsed)
}

fn parse_echo_server(args: impl Iterator<Item = String>) -> Result<EchoServerArgs, String> {
    let (mut implementation, mut addr) = (None, None);
    parse_options(args, |name, value| {
        match name {
            "--impl" => implementation = Some(value("a server name")?),
            "--addr" => {
                let text = value("an address")?;
                let parsed = text
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("--addr: {text:?}: {e}"))?;
                addr = Some(parsed);
            }
            _ => return Err(format!("unknown option {name:?} for echo-server")),
        }
        Ok(())
    })?;
    match (implementation, addr) {
        (Some(implementation), Some(addr)) => Ok(EchoServerArgs {
            implementation,
            addr,
        }),
        _ => Err("echo-server needs --impl NAME and --addr IP:PORT".to_string()),
    }
}

/// A comma-separated list of positive counts, `_` allowed as a digit separator.
fn parse_ns(list: &str) -> Result<Vec<usize>, String> {
    list.split(',').map(|s| parse_count(s, "--n")).collect()
}

fn parse_count(s: &str, option: &str) -> Result<usize, String> {
    match s.trim().replace('_', "").parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{option}: {s:?} is not a positive whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &str) -> Result<Command, String> {
        parse(words.split_whitespace().map(String::from))
    }

    #[test]
    fn compare_takes_every_option() {
        let cmd = parse_words("compare --quick --n 10,1_000 --rounds=50 --csv a.csv --svg b.svg")
            .unwrap();
        assert_eq!(
            cmd,
            Command::Compare(CompareArgs {
                quick: true,
                ns: Some(vec![10, 1000]),
                rounds: Some(50),
                csv: Some("a.csv".into()),
                svg: Some("b.svg".into()),
            })
        );
        assert_eq!(
            parse_words("compare").unwrap(),
            Command::Compare(CompareArgs::default())
        );
    }

    #[test]
    fn peers_takes_quick_and_csv() {
        assert_eq!(
            parse_words("peers --quick --only timers,spawn --csv=out/p.csv").unwrap(),
            Command::Peers(PeersArgs {
                quick: true,
                only: Some(vec!["timers".into(), "spawn".into()]),
                csv: Some("out/p.csv".into()),
            })
        );
        assert_eq!(
            parse_words("peers").unwrap(),
            Command::Peers(PeersArgs::default())
        );
        assert!(parse_words("peers --csv").is_err());
        assert!(parse_words("peers --n 10").is_err());
    }

    #[test]
    fn echo_takes_every_option() {
        let cmd = parse_words(
            "echo --quick --connections 100 --size=1_024 --duration-ms 500 --samples 7 \
             --servers tokio,raw --csv e.csv",
        )
        .unwrap();
        assert_eq!(
            cmd,
            Command::Echo(EchoArgs {
                quick: true,
                connections: Some(100),
                size: Some(1024),
                duration_ms: Some(500),
                samples: Some(7),
                servers: Some(vec!["tokio".into(), "raw".into()]),
                csv: Some("e.csv".into()),
            })
        );
        assert_eq!(
            parse_words("echo").unwrap(),
            Command::Echo(EchoArgs::default())
        );
        assert!(parse_words("echo --connections 0").is_err());
        assert!(parse_words("echo --size").is_err());
        assert!(parse_words("echo --n 10").is_err());
    }

    #[test]
    fn echo_server_needs_an_implementation_and_an_address() {
        assert_eq!(
            parse_words("echo-server --impl raw --addr 127.0.0.1:4000").unwrap(),
            Command::EchoServer(EchoServerArgs {
                implementation: "raw".into(),
                addr: "127.0.0.1:4000".parse().unwrap(),
            })
        );
        assert!(parse_words("echo-server --impl raw").is_err());
        assert!(parse_words("echo-server --impl raw --addr localhost").is_err());
    }

    #[test]
    fn check_csv_and_help_parse() {
        assert_eq!(
            parse_words("check-csv x.csv").unwrap(),
            Command::CheckCsv("x.csv".into())
        );
        assert_eq!(parse_words("").unwrap(), Command::Help);
        assert_eq!(parse_words("--help").unwrap(), Command::Help);
    }

    #[test]
    fn mistakes_are_reported_not_guessed() {
        assert!(parse_words("frobnicate").is_err());
        assert!(parse_words("compare --fast").is_err());
        assert!(parse_words("compare --n").is_err());
        assert!(parse_words("compare --n 10,0").is_err());
        assert!(parse_words("compare --rounds many").is_err());
        assert!(parse_words("check-csv").is_err());
    }
}
