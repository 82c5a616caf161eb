//! The CSV form of an echo run: one row per server × metric, the medians the report shows and
//! the ones it leaves out (the load generator's CPU per round trip, round trips per sample),
//! and the server's CPU per round trip pooled over the samples.
//!
//! Columns: `server,connections,size,metric,value,unit`, the fields of [`Row`], written as the
//! `compare` CSV is.

use std::io::{self, Write};

use serde::Serialize;

use super::{pooled_us_per_trip, EchoRun};
use crate::compare_csv::{write_rows, write_value};

/// One median (or pooled figure) of one server.
#[derive(Serialize)]
struct Row<'a> {
    server: &'a str,
    connections: usize,
    size: usize,
    metric: &'a str,
    #[serde(serialize_with = "write_value")]
    value: f64,
    unit: &'a str,
}

/// Write the header and every median of `run` to `out`.
///
/// # Errors
/// Those of `out`.
pub fn write(out: impl Write, run: &EchoRun) -> io::Result<()> {
    let rows = run.results.iter().flat_map(|result| {
        let m = &result.medians;
        let (pooled_user, pooled_system) = pooled_us_per_trip(&result.samples);
        let metrics = [
            ("round_trips_per_second", m.trips_per_second, "1/s"),
            ("user_per_round_trip", m.user_us, "us"),
            ("system_per_round_trip", m.system_us, "us"),
            ("user_per_round_trip_pooled", pooled_user, "us"),
            ("system_per_round_trip_pooled", pooled_system, "us"),
            ("tick_per_round_trip", m.tick_us, "us"),
            ("load_cpu_per_round_trip", m.client_us, "us"),
            ("server_cpu", m.server_busy * 100.0, "%"),
            ("load_cpu", m.client_busy * 100.0, "%"),
            ("round_trips_per_sample", m.trips, "round trips"),
            ("samples", m.samples as f64, "samples"),
        ];
        metrics.map(|(metric, value, unit)| Row {
            server: result.server.name(),
            connections: run.plan.connections,
            size: run.plan.size,
            metric,
            value,
            unit,
        })
    });
    write_rows(out, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::tests::run_of;
    use crate::echo::{Medians, Server};

    #[test]
    fn one_row_per_server_and_metric_after_the_header() {
        let run = run_of(&[(
            Server::Raw,
            Medians {
                trips_per_second: 50_000.0,
                user_us: 1.5,
                samples: 3,
                ..Medians::default()
            },
        )]);
        let mut out = Vec::new();
        write(&mut out, &run).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12);
        assert_eq!(lines[0], "server,connections,size,metric,value,unit");
        assert_eq!(lines[1], "raw,50,64,round_trips_per_second,50000,1/s");
        assert_eq!(lines[2], "raw,50,64,user_per_round_trip,1.500,us");
        assert_eq!(lines[11], "raw,50,64,samples,3,samples");
    }
}
