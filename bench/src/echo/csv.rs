//! The CSV form of an echo run: one row per server × metric, the medians the report shows and
//! the ones it leaves out (the load generator's CPU per round trip, round trips per sample),
//! and the server's CPU per round trip pooled over the samples.
//!
//! Columns: `server,connections,size,metric,value,unit`, quoted as the `compare` CSV is.

use std::io::{self, Write};

use super::{pooled_us_per_trip, EchoRun};
use crate::csv::{escape, format_value};

/// The header line, without its line break.
pub const HEADER: &str = "server,connections,size,metric,value,unit";

/// Write the header and every median of `run` to `out`.
///
/// # Errors
/// Those of `out`.
pub fn write(out: &mut impl Write, run: &EchoRun) -> io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for result in &run.results {
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
        for (metric, value, unit) in metrics {
            let fields = [
                escape(result.server.name()),
                run.plan.connections.to_string(),
                run.plan.size.to_string(),
                escape(metric),
                format_value(value),
                escape(unit),
            ];
            writeln!(out, "{}", fields.join(","))?;
        }
    }
    Ok(())
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
        assert_eq!(lines[0], HEADER);
        assert_eq!(lines[1], "raw,50,64,round_trips_per_second,50000,1/s");
        assert_eq!(lines[2], "raw,50,64,user_per_round_trip,1.500,us");
        assert_eq!(lines[11], "raw,50,64,samples,3,samples");
    }
}
