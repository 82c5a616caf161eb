//! The machine a run measured, described for the report's first lines: OS and kernel, CPU
//! model and count.

use std::process::Command;

/// What the report says about the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// `uname -srm`, e.g. "Linux 6.8.0 x86_64".
    pub os: String,
    /// The CPU model as `/proc/cpuinfo` names it, or "unknown".
    pub cpu_model: String,
    /// CPUs this process may run on.
    pub cpus: usize,
}

impl Machine {
    /// Describe this machine. Never fails: what cannot be found is "unknown".
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine {
            os: uname().unwrap_or_else(|| std::env::consts::OS.to_string()),
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".to_string()),
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

fn uname() -> Option<String> {
    let out = Command::new("uname").arg("-srm").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.trim();
    (out.status.success() && !line.is_empty()).then(|| line.to_string())
}

/// The first `model name` (x86) or `Model`/`cpu model` (ARM, MIPS) line of `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let key = key.trim();
        let known = ["model name", "Model", "cpu model", "Processor"];
        (known.contains(&key) && !value.trim().is_empty()).then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_is_read_from_the_model_name_line() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(text).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn detect_finds_at_least_one_cpu() {
        assert!(Machine::detect().cpus >= 1);
    }
}
