//! The CPU time of another process, from `/proc/PID/stat` (proc(5)): fields 14 and 15,
//! `utime` and `stime`, in clock ticks (`sysconf(_SC_CLK_TCK)`, 100 per second on Linux).
//!
//! The kernel keeps the total precisely and splits it between user and system time in
//! proportion to the ticks it sampled in each, so the split is only as good as the number of
//! ticks a sample spans: samples of a second or more.

use std::io;
use std::process::Command;
use std::time::Duration;

/// User and system CPU time of a process (all its threads), in clock ticks.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcCpu {
    /// `utime`: ticks in user mode.
    pub user: u64,
    /// `stime`: ticks in kernel mode.
    pub system: u64,
}

impl ProcCpu {
    /// The ticks from `earlier` to `self` (zero where a counter went backwards).
    pub fn since(self, earlier: ProcCpu) -> ProcCpu {
        ProcCpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Read the CPU time of process `pid`.
///
/// # Errors
/// `NotFound` if the process is gone (or this is not Linux), `InvalidData` if the file does not
/// parse.
pub fn read(pid: u32) -> io::Result<ProcCpu> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    parse(&text).map_err(|m| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {m}")))
}

/// `utime` and `stime` of one `/proc/PID/stat` line.
///
/// The second field, `comm`, is the command name in parentheses and may itself hold spaces and
/// parentheses, so the fields are counted from after its *last* `)`: there the third field,
/// `state`, begins, and `utime` is the 12th field from it.
///
/// # Errors
/// A message saying what is missing.
pub fn parse(stat: &str) -> Result<ProcCpu, String> {
    let (_, rest) = stat
        .rsplit_once(')')
        .ok_or_else(|| "no ')' closing the command name".to_string())?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields are numbered from 1 in proc(5); `state` (field 3) is fields[0] here.
    let field = |number: usize| -> Result<u64, String> {
        let raw = fields
            .get(number - 3)
            .ok_or_else(|| format!("only {} fields after the command name", fields.len()))?;
        raw.parse()
            .map_err(|_| format!("field {number} is {raw:?}, not a tick count"))
    };
    Ok(ProcCpu {
        user: field(14)?,
        system: field(15)?,
    })
}

/// Clock ticks per second, as `getconf CLK_TCK` says, or 100 (what Linux reports on every
/// architecture: `USER_HZ`) if it cannot be asked.
pub fn ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// `ticks` as a duration, at `per_second` ticks a second.
pub fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / per_second.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_fields_14_and_15() {
        let line = "22786 (cat) R 22781 22781 22062 0 -1 4194304 97 0 0 0 31 7 0 0 20 0 1 0 \
                    409115 3133440 405 18446744073709551615 0\n";
        assert_eq!(
            parse(line),
            Ok(ProcCpu {
                user: 31,
                system: 7
            })
        );
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let line = "4242 (tulip (echo) ) srv) S 1 4242 4242 0 -1 4194560 120 0 0 0 \
                    1234 567 0 0 20 0 1 0 5000 1000000 300 18446744073709551615\n";
        assert_eq!(
            parse(line),
            Ok(ProcCpu {
                user: 1234,
                system: 567
            })
        );
    }

    #[test]
    fn truncated_or_garbled_lines_are_errors() {
        assert!(parse("4242 tulip S 1 2 3").is_err());
        assert!(parse("4242 (tulip) S 1 2 3").is_err());
        let garbled = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 lots 2 0 0";
        assert!(parse(garbled).unwrap_err().contains("field 14"));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_can_be_read_and_its_time_only_grows() {
        let before = read(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..10_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let after = read(std::process::id()).unwrap();
        assert!(after.user >= before.user && after.system >= before.system);
    }

    #[test]
    fn ticks_convert_at_the_given_rate() {
        assert_eq!(ticks_to_duration(150, 100), Duration::from_millis(1500));
        assert_eq!(ticks_to_duration(3, 0), Duration::from_secs(3));
        assert!(ticks_per_second() > 0);
    }
}
