//! How much of the two pinned CPUs something other than this run took meanwhile (other
//! processes, interrupts for them, the hypervisor's steal): the CPU's busy ticks from
//! `/proc/stat` (proc(5)) less the ticks of this run's own processes, over the same window.
//! On a shared machine this explains round trips/s lower than a quiet machine gives.

use std::io;

use super::proc_stat::ProcCpu;

/// Ticks of one CPU since boot: all of them, and those not idle.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// user + nice + system + idle + iowait + irq + softirq + steal.
    pub total: u64,
    /// The same without idle and iowait.
    pub busy: u64,
}

/// The ticks of CPU `cpu` in `/proc/stat`'s text.
///
/// # Errors
/// A message if the CPU has no line or the line does not parse.
pub fn parse_cpu_line(stat: &str, cpu: usize) -> Result<CpuTicks, String> {
    let label = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))
        .ok_or_else(|| format!("no {label} line"))?;
    // guest and guest_nice (fields 9 and 10) are already counted in user and nice.
    let fields = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| {
            f.parse::<u64>()
                .map_err(|_| format!("{label}: {f:?} is not a tick count"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = fields[..] else {
        return Err(format!(
            "{label}: {} fields, expected 8 or more",
            fields.len()
        ));
    };
    let total = user + nice + system + idle + iowait + irq + softirq + steal;
    Ok(CpuTicks {
        total,
        busy: total - idle - iowait,
    })
}

fn read_cpu(cpu: usize) -> io::Result<CpuTicks> {
    let text = std::fs::read_to_string("/proc/stat")?;
    parse_cpu_line(&text, cpu).map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m))
}

/// The share of each pinned CPU others took over a run.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Contention {
    /// The servers' CPU.
    pub server_cpu: usize,
    /// The load generator's CPU.
    pub client_cpu: usize,
    /// Fraction of the servers' CPU that others used.
    pub server_others: f64,
    /// Fraction of the load generator's CPU that others used.
    pub client_others: f64,
}

/// A window being measured: the two CPUs' ticks and this run's own at its start.
#[derive(Debug)]
pub struct Probe {
    server_cpu: usize,
    client_cpu: usize,
    at_start: [CpuTicks; 2],
    ours_at_start: [ProcCpu; 2],
}

impl Probe {
    /// Start measuring CPUs `server_cpu` and `client_cpu`, on which this run has used `ours`
    /// ticks so far (the servers' together, then the load generator's).
    ///
    /// # Errors
    /// Those of reading `/proc/stat`.
    pub fn start(server_cpu: usize, client_cpu: usize, ours: [ProcCpu; 2]) -> io::Result<Probe> {
        Ok(Probe {
            server_cpu,
            client_cpu,
            at_start: [read_cpu(server_cpu)?, read_cpu(client_cpu)?],
            ours_at_start: ours,
        })
    }

    /// End the window, this run having used `ours` ticks by now.
    ///
    /// # Errors
    /// Those of reading `/proc/stat`.
    pub fn finish(self, ours: [ProcCpu; 2]) -> io::Result<Contention> {
        let now = [read_cpu(self.server_cpu)?, read_cpu(self.client_cpu)?];
        let share = |i: usize| {
            others_share(
                self.at_start[i],
                now[i],
                ours[i].since(self.ours_at_start[i]),
            )
        };
        Ok(Contention {
            server_cpu: self.server_cpu,
            client_cpu: self.client_cpu,
            server_others: share(0),
            client_others: share(1),
        })
    }
}

/// The fraction of a CPU's ticks from `before` to `after` that were busy but not `ours`.
fn others_share(before: CpuTicks, after: CpuTicks, ours: ProcCpu) -> f64 {
    let total = after.total.saturating_sub(before.total);
    let busy = after.busy.saturating_sub(before.busy);
    let others = busy.saturating_sub(ours.user + ours.system);
    others as f64 / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  306810 0 163663 598950 4527 0 23393 765 0 0\n\
                        cpu0 156284 0 90652 288630 1495 0 11556 385 0 0\n\
                        cpu1 150526 0 73011 310320 3032 0 11836 379 0 0\n\
                        intr 1 2 3\n";

    #[test]
    fn a_cpu_line_counts_everything_but_idle_and_iowait_as_busy() {
        let cpu1 = parse_cpu_line(STAT, 1).unwrap();
        assert_eq!(cpu1.total, 150526 + 73011 + 310320 + 3032 + 11836 + 379);
        assert_eq!(cpu1.busy, 150526 + 73011 + 11836 + 379);
        assert!(parse_cpu_line(STAT, 2).is_err());
        assert!(parse_cpu_line("cpu0 1 2 3\n", 0).is_err());
    }

    #[test]
    fn others_are_the_busy_ticks_this_run_did_not_use() {
        let before = CpuTicks {
            total: 1000,
            busy: 500,
        };
        let after = CpuTicks {
            total: 2000,
            busy: 1400,
        };
        let ours = ProcCpu {
            user: 100,
            system: 500,
        };
        assert!((others_share(before, after, ours) - 0.3).abs() < 1e-9);
        let all_ours = ProcCpu {
            user: 0,
            system: 2000,
        };
        assert_eq!(others_share(before, after, all_ours), 0.0);
    }
}
