//! The `check-csv` command, for CI: does a `compare` CSV hold results for every backend this
//! machine has?

use std::fs::File;
use std::io;

use tulip_sys::Backend;

use crate::compare_csv::{self, Row};
use crate::metric::Metric;

/// Check `rows` against `backends`: every backend has a positive, finite `select_median` for
/// at least one case, and every row names a known metric with a finite value. Returns one line
/// per backend saying how many cases it has.
///
/// # Errors
/// `InvalidData` listing every problem found.
pub fn check_rows(rows: &[Row], backends: &[Backend]) -> io::Result<Vec<String>> {
    let mut problems = Vec::new();
    for row in rows {
        if !compare_csv::is_known_metric(&row.metric) {
            problems.push(format!(
                "unknown metric {:?} for {}",
                row.metric, row.backend
            ));
        }
        if row.metric == Metric::SelectOverhead.name() && (row.value <= 0.0 || row.value.is_nan()) {
            problems.push(format!(
                "{} {} N={} A={} is not a positive ratio: {}",
                row.backend, row.metric, row.n, row.active, row.value
            ));
        }
        if !row.value.is_finite() {
            problems.push(format!(
                "{} {} N={} A={} is {}",
                row.backend, row.metric, row.n, row.active, row.value
            ));
        }
    }
    let mut summary = Vec::new();
    for backend in backends {
        let cases = rows
            .iter()
            .filter(|r| r.backend == backend.name() && r.metric == Metric::SelectMedian.name())
            .filter(|r| r.value > 0.0)
            .count();
        if cases == 0 {
            problems.push(format!(
                "no {} row for backend {backend}",
                Metric::SelectMedian.name()
            ));
        }
        summary.push(format!("{backend}: {cases} cases"));
    }
    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            problems.join("; "),
        ))
    }
}

/// Read the CSV at `path` and check it for the backends of this OS.
///
/// # Errors
/// The file's read error, or `InvalidData` from parsing or [`check_rows`].
pub fn run(path: &str) -> io::Result<Vec<String>> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{path}: {e}"));
    let file = File::open(path).map_err(named)?;
    let rows = compare_csv::read(file).map_err(named)?;
    check_rows(&rows, Backend::available())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(backend: &str, metric: &str, value: f64) -> Row {
        Row {
            backend: backend.to_string(),
            n: 10,
            active: 1,
            metric: metric.to_string(),
            value,
            unit: "ns".to_string(),
        }
    }

    #[test]
    fn a_csv_with_every_backend_passes() {
        let rows = vec![
            row("select", "select_median", 900.0),
            row("poll", "select_median", 800.0),
        ];
        let summary = check_rows(&rows, &[Backend::Select, Backend::Poll]).unwrap();
        assert_eq!(summary, vec!["select: 1 cases", "poll: 1 cases"]);
    }

    #[test]
    fn a_missing_backend_fails_and_is_named() {
        let rows = vec![
            row("select", "select_median", 900.0),
            row("poll", "select_p99", 800.0),
        ];
        let err = check_rows(&rows, &[Backend::Select, Backend::Poll]).unwrap_err();
        assert!(err.to_string().contains("backend poll"), "{err}");
    }

    #[test]
    fn unknown_metrics_and_non_finite_values_fail() {
        let rows = vec![row("poll", "select_median", 1.0), row("poll", "speed", 1.0)];
        assert!(check_rows(&rows, &[Backend::Poll]).is_err());
        let rows = vec![
            row("poll", "select_median", 1.0),
            row("poll", "select_p99", f64::NAN),
        ];
        assert!(check_rows(&rows, &[Backend::Poll]).is_err());
    }

    #[test]
    fn a_raw_overhead_must_be_a_positive_ratio() {
        let ok = vec![
            row("poll", "select_median", 1.0),
            row("poll", "raw_select_median", 0.9),
            row("poll", "select_overhead", 1.1),
        ];
        assert!(check_rows(&ok, &[Backend::Poll]).is_ok());
        let zero = vec![
            row("poll", "select_median", 1.0),
            row("poll", "select_overhead", 0.0),
        ];
        assert!(check_rows(&zero, &[Backend::Poll]).is_err());
    }
}
