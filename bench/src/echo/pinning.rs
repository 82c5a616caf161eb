//! Keeping the servers and the load generator off each other's CPU: the servers run under
//! `taskset -c S`, and this process pins itself to another CPU, C, with `taskset -a -cp C PID`
//! once at start (the first two CPUs it may run on). Without `taskset` or a second CPU the run
//! goes on unpinned and the report says so.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Where the servers and the load generator run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// Servers on CPU `server`, this process (the load generator) on CPU `client`.
    Pinned {
        /// The servers' CPU.
        server: usize,
        /// The load generator's CPU.
        client: usize,
    },
    /// Not pinned, for the reason given.
    Unpinned(String),
}

impl fmt::Display for Pinning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pinning::Pinned { server, client } => write!(
                f,
                "servers pinned to CPU {server} (`taskset -c {server}`), load generator to \
                 CPU {client}"
            ),
            Pinning::Unpinned(why) => write!(f, "unpinned ({why})"),
        }
    }
}

impl Pinning {
    /// Pin this process to the second CPU it may run on and keep the first for the servers,
    /// or say why not. Call before starting any thread (`-a` pins those there are, too).
    pub fn pin_this_process() -> Pinning {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let Some(list) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        else {
            return Pinning::Unpinned("no Cpus_allowed_list in /proc/self/status".into());
        };
        let cpus = match parse_cpu_list(list) {
            Ok(cpus) => cpus,
            Err(m) => return Pinning::Unpinned(format!("Cpus_allowed_list: {m}")),
        };
        let (server, client) = match cpus[..] {
            [server, client, ..] => (server, client),
            _ => return Pinning::Unpinned(format!("{} CPU allowed", cpus.len())),
        };
        let pid = std::process::id().to_string();
        let out = Command::new("taskset")
            .args(["-a", "-cp", &client.to_string(), &pid])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => Pinning::Pinned { server, client },
            Ok(out) => Pinning::Unpinned(format!(
                "taskset failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Pinning::Unpinned(format!("taskset: {e}")),
        }
    }

    /// A command that runs `exe` on the servers' CPU (or anywhere, unpinned).
    pub fn server_command(&self, exe: &Path) -> Command {
        match self {
            Pinning::Pinned { server, .. } => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(server.to_string()).arg(exe);
                command
            }
            Pinning::Unpinned(_) => Command::new(exe),
        }
    }
}

/// The CPUs of a list such as `0-3,8,10-11` (cpuset(7)'s list format), in order.
///
/// # Errors
/// A message naming the part that is not a CPU or a range, or saying the list is empty.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("{part:?} is not a CPU or a range"))
        };
        match part.split_once('-') {
            Some((first, last)) => cpus.extend(number(first)?..=number(last)?),
            None => cpus.push(number(part)?),
        }
    }
    if cpus.is_empty() {
        return Err(format!("no CPU in {list:?}"));
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_expand_ranges_in_order() {
        assert_eq!(parse_cpu_list("0-1\n"), Ok(vec![0, 1]));
        assert_eq!(parse_cpu_list(" 3,5-7,10"), Ok(vec![3, 5, 6, 7, 10]));
        assert_eq!(parse_cpu_list("0"), Ok(vec![0]));
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("0-x").is_err());
    }

    #[test]
    fn unpinned_servers_run_the_executable_itself() {
        let command = Pinning::Unpinned("test".into()).server_command(Path::new("/bin/true"));
        assert_eq!(command.get_program(), "/bin/true");
        let pinned = Pinning::Pinned {
            server: 0,
            client: 1,
        };
        let command = pinned.server_command(Path::new("/bin/true"));
        assert_eq!(command.get_program(), "taskset");
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(args, ["-c", "0", "/bin/true"]);
    }
}
