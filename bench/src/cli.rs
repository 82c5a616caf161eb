//! The command line: `tulip-bench <command> [options]`, read with `lexopt`, which splits the
//! words (`--opt value`, `--opt=value`) and leaves the meaning, the messages and the usage text
//! to this file.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use lexopt::Arg::{Long, Short, Value};
use lexopt::{Arg, Parser};

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
      spawn, task switch, a pipe ping-pong (also against a raw epoll loop), a bounded
      queue and an uncontended lock, in one run; Markdown table on stdout, progress on
      stderr
      --quick      smaller and fewer samples: seconds instead of a minute
      --only LIST  only these workloads, comma-separated (call_soon, timers, spawn,
                   switch, ping_pong, queue, lock): for profiling one of them
      --csv PATH   also write one row per workload × runner × metric
  echo [--quick] [--connections C] [--size S] [--duration-ms MS] [--samples K]
       [--servers LIST] [--csv PATH]
      a TCP echo server on tulip (epoll; and uring as tulip-uring where allowed), on
      tokio's current-thread runtime and on a raw epoll loop, each its own process
      pinned to one CPU, under a closed-loop load from another; round trips/s and
      server CPU per round trip, Markdown table on stdout
      --quick           10 connections, 0.3 s samples, 3 of them: seconds, for CI
      --connections C   client connections per server (default 50)
      --size S          bytes per message (default 64)
      --duration-ms MS  load per sample (default 3000; CPU time moves in 10 ms ticks)
      --samples K       measured samples per server (default 5), after one warm-up
      --servers LIST    only these, comma-separated (tulip, tulip-uring, tokio, raw)
      --csv PATH        also write one row per server × metric
  aio [--quick] [--only LIST] [--depths LIST]
      random 4 KiB reads of a file in the page cache at queue depths 1 and 64: tulip's
      io_uring and pool engines, the bare ring, a blocking pread loop, tokio's
      spawn_blocking + pread;
      reads/s and ratios, Markdown table on stdout
      --quick      an 8 MiB file and 0.2 s per figure (default: 256 MiB, 5 s in 10
                   turns, the runners alternating), for CI
      --only LIST  only these runners, comma-separated (uring, uring-vec, ring, pool,
                   blocking, tokio; uring-vec: read_at, a new buffer per read; ring:
                   tulip-sys's io_uring driven directly, no loop): for profiling one
                   of them
      --depths LIST  the queue depths, comma-separated (default 1,64)
  faults [--quick] [--backend NAME] [--only LIST]
      put the loop through each fault of the README's Reliability section at scale
      (signal storm, fd reuse, EMFILE, resets, half-close, a client that does not read,
      panics, 1,000 loop lifetimes, 100,000 timers and tasks, 10,000 fds, a shared
      signal, a burst of connects, 10,000 timeouts), check what it did, and print one
      figure per fault in a Markdown table; exits non-zero if the loop misbehaved, 3 if
      a probe hung
      --quick         smaller scales: seconds, for CI
      --backend NAME  select, poll, epoll or kqueue (default: the best of this OS)
      --only LIST     only these probes, comma-separated (eintr, fd-reuse, emfile, resets,
                      half-close, slow-client, panics, leaks, timers-tasks, many-fds,
                      shared-signal, backlog, wakers)
  memory [--n LIST] [--connections LIST] [--only LIST]
      only the memory figures of peers and echo (bytes and allocations per pending
      timer, per idle task, per idle connection), for any N; Markdown table on stdout
      --n LIST            timers and tasks, comma-separated (default 100000)
      --connections LIST  idle connections, comma-separated (default 5000)
      --only LIST         only these, comma-separated (timers, tasks, connections)
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

/// Options of `memory`; what is not given is the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryArgs {
    /// `--n`, if given.
    pub ns: Option<Vec<usize>>,
    /// `--connections`, if given.
    pub connections: Option<Vec<usize>>,
    /// `--only`, if given: checked by `memory`.
    pub only: Option<Vec<String>>,
}

/// Options of the hidden `echo-server` command, which `echo` runs as its servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoServerArgs {
    /// `--impl`: the server's name, checked by `echo`.
    pub implementation: String,
    /// `--addr`: where to listen.
    pub addr: SocketAddr,
}

/// Options of the hidden `echo-load` command: `echo`'s load generator on its own, against a
/// server started by hand (`bench/instructions.sh echo` counts the server's instructions
/// while this runs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoLoadArgs {
    /// `--addr`: the server's address.
    pub addr: SocketAddr,
    /// `--connections` (default 50, as `echo`'s).
    pub connections: usize,
    /// `--size`: bytes per message (default 64, as `echo`'s).
    pub size: usize,
    /// `--duration-ms`: how long to load (default 1000).
    pub duration_ms: usize,
}

/// Options of `faults` (and of its hidden `faults-child`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultsArgs {
    /// `--quick`.
    pub quick: bool,
    /// `--backend`, if given: checked by `faults`.
    pub backend: Option<String>,
    /// `--only`, if given: probe names, checked by `faults`.
    pub only: Option<Vec<String>>,
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
    /// Load one echo server and print the round trips done (hidden: for
    /// `bench/instructions.sh echo`).
    EchoLoad(EchoLoadArgs),
    /// Measure asynchronous file reads.
    Aio {
        /// `--quick`.
        quick: bool,
        /// `--only`, if given: runner names, checked by `aio`.
        only: Option<Vec<String>>,
        /// `--depths`, if given.
        depths: Option<Vec<usize>>,
    },
    /// Put the loop through its faults.
    Faults(FaultsArgs),
    /// Run one part of a `faults` probe in this process (hidden: `faults` starts these).
    FaultsChild {
        /// Which part.
        role: String,
        /// The options `faults` passed on.
        args: FaultsArgs,
    },
    /// Measure memory only.
    Memory(MemoryArgs),
    /// Check a CSV written by `compare --csv`.
    CheckCsv(PathBuf),
    /// Print the usage.
    Help,
}

/// Parse the arguments after the program name.
///
/// `--help` or `-h` anywhere asks for [`Command::Help`].
///
/// # Errors
/// A message saying what was wrong, naming the option and the value where there is one
/// (unknown command or option, missing or bad value).
pub fn parse<I>(args: I) -> Result<Command, String>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut parser = Parser::from_args(args);
    let command = match parser.next().map_err(message)? {
        None | Some(Long("help") | Short('h')) => return Ok(Command::Help),
        Some(Value(command)) => command,
        Some(option) => return Err(format!("expected a command, found {}", describe(&option))),
    };
    match command.to_str() {
        Some("help") => Ok(Command::Help),
        Some("compare") => parse_compare(&mut parser),
        Some("peers") => parse_peers(&mut parser),
        Some("echo") => parse_echo(&mut parser),
        Some("echo-server") => parse_echo_server(&mut parser),
        Some("echo-load") => parse_echo_load(&mut parser),
        Some("aio") => parse_aio(&mut parser),
        Some("memory") => parse_memory(&mut parser),
        Some("check-csv") => parse_check_csv(&mut parser),
        Some("faults") => {
            Ok(parse_faults(&mut parser, "faults")?.map_or(Command::Help, Command::Faults))
        }
        Some("faults-child") => parse_faults_child(&mut parser),
        _ => Err(format!("unknown command {command:?}")),
    }
}

fn parse_compare(parser: &mut Parser) -> Result<Command, String> {
    let mut args = CompareArgs::default();
    while let Some(arg) = parser.next().map_err(message)? {
        match arg {
            Long("quick") => args.quick = true,
            Long("n") => args.ns = Some(counts(parser, "--n")?),
            Long("rounds") => args.rounds = Some(count(parser, "--rounds", "a count")?),
            Long("csv") => args.csv = Some(path(parser, "--csv")?),
            Long("svg") => args.svg = Some(path(parser, "--svg")?),
            other => return help_or_mistake(&other, "compare"),
        }
    }
    Ok(Command::Compare(args))
}

fn parse_peers(parser: &mut Parser) -> Result<Command, String> {
    let mut args = PeersArgs::default();
    while let Some(arg) = parser.next().map_err(message)? {
        match arg {
            Long("quick") => args.quick = true,
            Long("only") => args.only = Some(list(parser, "--only", "a list of workloads")?),
            Long("csv") => args.csv = Some(path(parser, "--csv")?),
            other => return help_or_mistake(&other, "peers"),
        }
    }
    Ok(Command::Peers(args))
}

fn parse_echo(parser: &mut Parser) -> Result<Command, String> {
    let mut args = EchoArgs::default();
    while let Some(arg) = parser.next().map_err(message)? {
        match arg {
            Long("quick") => args.quick = true,
            Long("connections") => {
                args.connections = Some(count(parser, "--connections", "a count")?)
            }
            Long("size") => args.size = Some(count(parser, "--size", "a size in bytes")?),
            Long("duration-ms") => {
                args.duration_ms = Some(count(parser, "--duration-ms", "milliseconds")?);
            }
            Long("samples") => args.samples = Some(count(parser, "--samples", "a count")?),
            Long("servers") => args.servers = Some(list(parser, "--servers", "a list of servers")?),
            Long("csv") => args.csv = Some(path(parser, "--csv")?),
            other => return help_or_mistake(&other, "echo"),
        }
    }
    Ok(Command::Echo(args))
}

fn parse_echo_server(parser: &mut Parser) -> Result<Command, String> {
    let (mut implementation, mut addr) = (None, None);
    while let Some(arg) = parser.next().map_err(message)? {
        match arg {
            Long("impl") => implementation = Some(text(parser, "--impl", "a server name")?),
            Long("addr") => addr = Some(socket_addr(parser, "--addr")?),
            other => return help_or_mistake(&other, "echo-server"),
        }
    }
    match (implementation, addr) {
        (Some(implementation), Some(addr)) => Ok(Command::EchoServer(EchoServerArgs {
            implementation,
            addr,
        })),
        _ => Err("echo-server needs --impl NAME and --addr IP:PORT".to_string()),
    }
}

fn parse_echo_load(parser: &mut Parser) -> Result<Command, String> {
    let mut addr = None;
    let (mut connections, mut size, mut duration_ms) = (50, 64, 1000);
    while let Some(arg) = parser.next().map_err(message)? {
        match arg {
            Long("addr") => addr = Some(socket_addr(parser, "--addr")?),
            Long("connections") => connections = count(parser, "--connections", "a count")?,
            Long("size") => size = count(parser, "--size", "a size in bytes")?,
            Long("duration-ms") => duration_ms = count(parser, "--duration-ms", "milliseconds")?,
            other => return help_or_mistake(&other, "echo-load"),
        }
    }
    let addr = addr.ok_or("echo-load needs --addr IP:PORT")?;
    Ok(Command::EchoLoad(EchoLoadArgs {
        addr,
        connections,
        size,
        duration_ms,
    }))
}

fn parse_aio(parser: &mut Parser) -> Result<Command, String> {
    let (mut quick, mut only, mut depths) = (false, None, None);
    while let Some(arg) = parser.next().map_err(message)? {
        match arg {
            Long("quick") => quick = true,
            Long("only") => only = Some(list(parser, "--only", "a list of runners")?),
            Long("depths") => depths = Some(counts(parser, "--depths")?),
            other => return help_or_mistake(&other, "aio"),
        }
    }
    Ok(Command::Aio {
        quick,
        only,
        depths,
    })
}

fn parse_memory(parser: &mut Parser) -> Result<Command, String> {
    let mut args = MemoryArgs::default();
    while let Some(arg) = parser.next().map_err(message)? {
        match arg {
            Long("n") => args.ns = Some(counts(parser, "--n")?),
            Long("connections") => args.connections = Some(counts(parser, "--connections")?),
            Long("only") => args.only = Some(list(parser, "--only", "a list of kinds")?),
            other => return help_or_mistake(&other, "memory"),
        }
    }
    Ok(Command::Memory(args))
}

/// `faults`' options; `None` if they ask for the usage.
fn parse_faults(parser: &mut Parser, command: &str) -> Result<Option<FaultsArgs>, String> {
    let mut args = FaultsArgs::default();
    while let Some(arg) = parser.next().map_err(message)? {
        match arg {
            Long("quick") => args.quick = true,
            Long("backend") => args.backend = Some(text(parser, "--backend", "a backend name")?),
            Long("only") => args.only = Some(list(parser, "--only", "a list of probes")?),
            other => return help_or_mistake(&other, command).map(|_| None),
        }
    }
    Ok(Some(args))
}

fn parse_faults_child(parser: &mut Parser) -> Result<Command, String> {
    let role = match parser.next().map_err(message)? {
        Some(Value(role)) => role.to_string_lossy().into_owned(),
        _ => return Err("faults-child needs a ROLE".to_string()),
    };
    Ok(parse_faults(parser, "faults-child")?
        .map_or(Command::Help, |args| Command::FaultsChild { role, args }))
}

fn parse_check_csv(parser: &mut Parser) -> Result<Command, String> {
    let mut path = None;
    while let Some(arg) = parser.next().map_err(message)? {
        match arg {
            Value(value) if path.is_none() => path = Some(PathBuf::from(value)),
            Long("help") | Short('h') => return Ok(Command::Help),
            _ => return Err("check-csv takes exactly one PATH".to_string()),
        }
    }
    path.map(Command::CheckCsv)
        .ok_or_else(|| "check-csv takes exactly one PATH".to_string())
}

/// `--help` or `-h` among a command's options asks for the usage; anything else no option of
/// `command` matched is a mistake, named.
fn help_or_mistake(arg: &Arg<'_>, command: &str) -> Result<Command, String> {
    match arg {
        Long("help") | Short('h') => Ok(Command::Help),
        Value(value) => Err(format!("unexpected argument {value:?} for {command}")),
        option => Err(format!("unknown {} for {command}", describe(option))),
    }
}

/// `arg` as a message names it: `option "--fast"`, `argument "x"`.
fn describe(arg: &Arg<'_>) -> String {
    match arg {
        Long(name) => format!("option \"--{name}\""),
        Short(c) => format!("option \"-{c}\""),
        Value(value) => format!("argument {value:?}"),
    }
}

/// lexopt's own errors, in this file's words where they differ.
fn message(error: lexopt::Error) -> String {
    match error {
        lexopt::Error::UnexpectedValue { option, value } => {
            format!("{option} takes no value, found {value:?}")
        }
        other => other.to_string(),
    }
}

/// The value of `option` (`--opt value` or `--opt=value`), described as `what` if missing.
fn value(parser: &mut Parser, option: &str, what: &str) -> Result<OsString, String> {
    parser.value().map_err(|_| format!("{option} needs {what}"))
}

fn text(parser: &mut Parser, option: &str, what: &str) -> Result<String, String> {
    value(parser, option, what)?
        .into_string()
        .map_err(|value| format!("{option}: {value:?} is not valid UTF-8"))
}

/// An `IP:PORT` address.
fn socket_addr(parser: &mut Parser, option: &str) -> Result<SocketAddr, String> {
    let text = text(parser, option, "an address")?;
    text.parse().map_err(|e| format!("{option}: {text:?}: {e}"))
}

fn path(parser: &mut Parser, option: &str) -> Result<PathBuf, String> {
    value(parser, option, "a PATH").map(PathBuf::from)
}

/// A comma-separated list of names, each trimmed; checked against the known ones later.
fn list(parser: &mut Parser, option: &str, what: &str) -> Result<Vec<String>, String> {
    let list = text(parser, option, what)?;
    Ok(list
        .split(',')
        .map(|name| name.trim().to_string())
        .collect())
}

fn count(parser: &mut Parser, option: &str, what: &str) -> Result<usize, String> {
    parse_count(&text(parser, option, what)?, option)
}

/// A comma-separated list of positive counts.
fn counts(parser: &mut Parser, option: &str) -> Result<Vec<usize>, String> {
    let list = text(parser, option, "a list of N")?;
    list.split(',').map(|s| parse_count(s, option)).collect()
}

/// A positive count, `_` allowed as a digit separator (`10_000`).
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
    fn memory_takes_lists_of_n_and_kinds() {
        assert_eq!(
            parse_words("memory --n 10_000,100000 --connections=2000 --only timers").unwrap(),
            Command::Memory(MemoryArgs {
                ns: Some(vec![10_000, 100_000]),
                connections: Some(vec![2000]),
                only: Some(vec!["timers".into()]),
            })
        );
        assert_eq!(
            parse_words("memory").unwrap(),
            Command::Memory(MemoryArgs::default())
        );
        assert!(parse_words("memory --n").is_err());
        assert!(parse_words("memory --quick").is_err());
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
        assert_eq!(
            parse_words("echo-load --addr 127.0.0.1:4000 --connections 10").unwrap(),
            Command::EchoLoad(EchoLoadArgs {
                addr: "127.0.0.1:4000".parse().unwrap(),
                connections: 10,
                size: 64,
                duration_ms: 1000,
            })
        );
        assert!(parse_words("echo-load --connections 10").is_err());
        assert!(parse_words("echo-server --impl raw --addr localhost").is_err());
    }

    #[test]
    fn faults_takes_quick_backend_and_only() {
        assert_eq!(
            parse_words("faults --quick --backend poll --only eintr,leaks").unwrap(),
            Command::Faults(FaultsArgs {
                quick: true,
                backend: Some("poll".into()),
                only: Some(vec!["eintr".into(), "leaks".into()]),
            })
        );
        assert_eq!(
            parse_words("faults-child emfile --quick").unwrap(),
            Command::FaultsChild {
                role: "emfile".into(),
                args: FaultsArgs {
                    quick: true,
                    ..FaultsArgs::default()
                },
            }
        );
        assert_eq!(parse_words("faults --help").unwrap(), Command::Help);
        assert!(parse_words("faults --backend").is_err());
        assert!(parse_words("faults --n 10").is_err());
        assert!(parse_words("faults-child").is_err());
    }

    #[test]
    fn check_csv_and_help_parse() {
        assert_eq!(
            parse_words("check-csv x.csv").unwrap(),
            Command::CheckCsv("x.csv".into())
        );
        assert_eq!(parse_words("").unwrap(), Command::Help);
        assert_eq!(parse_words("help").unwrap(), Command::Help);
        assert_eq!(parse_words("--help").unwrap(), Command::Help);
        assert_eq!(parse_words("-h").unwrap(), Command::Help);
        assert_eq!(
            parse_words("compare --quick --help").unwrap(),
            Command::Help
        );
        assert_eq!(parse_words("check-csv -h").unwrap(), Command::Help);
    }

    #[test]
    fn mistakes_are_reported_not_guessed() {
        assert!(parse_words("frobnicate").is_err());
        assert!(parse_words("--quick compare").is_err());
        assert!(parse_words("compare --fast").is_err());
        assert!(parse_words("compare -q").is_err());
        assert!(parse_words("compare extra").is_err());
        assert!(parse_words("compare --quick=yes").is_err());
        assert!(parse_words("compare --n").is_err());
        assert!(parse_words("compare --n 10,0").is_err());
        assert!(parse_words("compare --rounds many").is_err());
        assert!(parse_words("check-csv").is_err());
        assert!(parse_words("check-csv a.csv b.csv").is_err());
    }

    #[test]
    fn messages_name_the_command_option_and_value() {
        let message = |words| parse_words(words).unwrap_err();
        assert_eq!(message("bogus"), "unknown command \"bogus\"");
        assert_eq!(
            message("compare --fast"),
            "unknown option \"--fast\" for compare"
        );
        assert_eq!(message("peers x"), "unexpected argument \"x\" for peers");
        assert_eq!(message("compare --csv"), "--csv needs a PATH");
        assert_eq!(message("echo --size"), "--size needs a size in bytes");
        assert_eq!(
            message("compare --n 10,x"),
            "--n: \"x\" is not a positive whole number"
        );
        assert_eq!(
            message("echo --samples=0"),
            "--samples: \"0\" is not a positive whole number"
        );
        assert_eq!(
            message("compare --quick=yes"),
            "--quick takes no value, found \"yes\""
        );
        assert_eq!(message("check-csv"), "check-csv takes exactly one PATH");
    }
}
