//! The CSV form of a peer run: one row per workload × runner × metric, the medians the report
//! shows and the ones it leaves out (wall time, the user/system split of every workload).
//!
//! Columns: `workload,runner,ops,metric,value,unit`, the fields of [`Row`], written as the
//! `compare` CSV is.

use std::io::{self, Write};

use serde::Serialize;

use super::PeerRun;
use crate::compare_csv::{write_rows, write_value};

/// One median of one workload on one runner.
#[derive(Serialize)]
struct Row<'a> {
    workload: &'a str,
    runner: &'a str,
    ops: usize,
    metric: &'a str,
    #[serde(serialize_with = "write_value")]
    value: f64,
    unit: &'a str,
}

/// Write the header and every median of `run` to `out`.
///
/// # Errors
/// Those of `out`.
pub fn write(out: impl Write, run: &PeerRun) -> io::Result<()> {
    let rows = run.results.iter().flat_map(|result| {
        result.runners.iter().flat_map(move |(runner, per_op)| {
            let metrics = [
                ("cpu_per_op", per_op.cpu_ns, "ns"),
                ("wall_per_op", per_op.wall_ns, "ns"),
                ("user_per_op", per_op.user_ns, "ns"),
                ("system_per_op", per_op.system_ns, "ns"),
                ("samples", per_op.samples as f64, "samples"),
            ];
            metrics.map(|(metric, value, unit)| Row {
                workload: result.workload.name(),
                runner: runner.name(),
                ops: result.ops,
                metric,
                value,
                unit,
            })
        })
    });
    write_rows(out, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Machine;
    use crate::peers::plan::{PeerPlan, Runner, Workload};
    use crate::peers::{PerOp, WorkloadResult};
    use std::time::Duration;

    #[test]
    fn one_row_per_workload_runner_and_metric_after_the_header() {
        let run = PeerRun {
            machine: Machine::detect(),
            plan: PeerPlan::new(true),
            results: vec![WorkloadResult {
                workload: Workload::Spawn,
                ops: 1000,
                runners: vec![(
                    Runner::Tokio,
                    PerOp {
                        cpu_ns: 12.5,
                        wall_ns: 13.0,
                        user_ns: 12.0,
                        system_ns: 0.5,
                        samples: 3,
                    },
                )],
            }],
            wall: Duration::from_secs(1),
        };
        let mut out = Vec::new();
        write(&mut out, &run).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], "workload,runner,ops,metric,value,unit");
        assert_eq!(lines[1], "spawn,tokio,1000,cpu_per_op,12.500,ns");
        assert_eq!(lines[5], "spawn,tokio,1000,samples,3,samples");
    }
}
