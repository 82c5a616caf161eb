//! The CSV form of a comparison: one row per backend × N × A × metric, and the reader the
//! `check-csv` command uses.
//!
//! Columns: `backend,n,active,metric,value,unit`. Fields are quoted as RFC 4180 says (a field
//! holding a comma, a quote or a line break is put in quotes, its quotes doubled).

use std::io::{self, Write};

use crate::metric::{Measurement, Metric};

/// The header line, without its line break.
pub const HEADER: &str = "backend,n,active,metric,value,unit";

/// One data row, as written and as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Backend name.
    pub backend: String,
    /// Socketpairs.
    pub n: usize,
    /// Active per round.
    pub active: usize,
    /// Metric name ([`Metric::name`]).
    pub metric: String,
    /// The value.
    pub value: f64,
    /// Its unit ([`Metric::unit`]).
    pub unit: String,
}

/// The rows of `measurements`, one per metric each has, in order.
pub fn rows(measurements: &[Measurement]) -> Vec<Row> {
    measurements
        .iter()
        .flat_map(|m| {
            m.values.iter().map(move |&(metric, value)| Row {
                backend: m.backend.name().to_string(),
                n: m.n,
                active: m.active,
                metric: metric.name().to_string(),
                value,
                unit: metric.unit().to_string(),
            })
        })
        .collect()
}

/// Write the header and `rows` to `out`.
///
/// # Errors
/// Those of `out`.
pub fn write(out: &mut impl Write, rows: &[Row]) -> io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for row in rows {
        let fields = [
            escape(&row.backend),
            row.n.to_string(),
            row.active.to_string(),
            escape(&row.metric),
            format_value(row.value),
            escape(&row.unit),
        ];
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

/// A value as the CSV holds it: integers without a fraction, others with 3 decimals.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// `field` quoted if it needs to be (RFC 4180).
pub fn escape(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// Split one CSV line into fields, undoing [`escape`]. Quoted fields may not span lines here:
/// the rows this crate writes never contain line breaks.
///
/// # Errors
/// `InvalidData` for an unterminated quote.
pub fn split_line(line: &str) -> io::Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err(invalid(format!("unterminated quote in {line:?}")));
    }
    fields.push(field);
    Ok(fields)
}

/// Parse a whole CSV file written by [`write`].
///
/// # Errors
/// `InvalidData` naming the line, for a wrong header, a wrong number of fields, or a number
/// that does not parse.
pub fn parse(text: &str) -> io::Result<Vec<Row>> {
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.trim_end() == HEADER => {}
        other => {
            return Err(invalid(format!(
                "expected the header {HEADER:?}, found {other:?}"
            )))
        }
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let lineno = i + 2;
        let f = split_line(line)?;
        let [backend, n, active, metric, value, unit] = <[String; 6]>::try_from(f)
            .map_err(|f| invalid(format!("line {lineno}: {} fields, expected 6", f.len())))?;
        let number = |s: &str, what: &str| {
            s.parse::<f64>()
                .map_err(|_| invalid(format!("line {lineno}: {what} {s:?} is not a number")))
        };
        rows.push(Row {
            backend,
            n: number(&n, "n")? as usize,
            active: number(&active, "active")? as usize,
            metric,
            value: number(&value, "value")?,
            unit,
        });
    }
    Ok(rows)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Whether `metric` is one this crate writes (used by the check).
pub fn is_known_metric(name: &str) -> bool {
    Metric::ALL.iter().any(|m| m.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tulip_sys::Backend;

    fn measurement() -> Measurement {
        Measurement {
            backend: Backend::Epoll,
            n: 100,
            active: 10,
            values: vec![
                (Metric::SelectMedian, 1234.0),
                (Metric::SyscallsPerSelect, 1.5),
            ],
        }
    }

    #[test]
    fn output_starts_with_the_header_and_has_one_row_per_metric() {
        let mut out = Vec::new();
        write(&mut out, &rows(&[measurement()])).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                HEADER,
                "epoll,100,10,select_median,1234,ns",
                "epoll,100,10,syscalls_per_select,1.500,syscalls",
            ]
        );
    }

    #[test]
    fn fields_with_commas_quotes_or_line_breaks_are_quoted() {
        assert_eq!(escape("epoll"), "epoll");
        assert_eq!(escape("a,b"), "\"a,b\"");
        assert_eq!(escape("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(escape("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn split_line_undoes_escape() {
        let fields = ["plain", "a,b", "say \"hi\"", ""];
        let line: Vec<String> = fields.iter().map(|f| escape(f)).collect();
        assert_eq!(split_line(&line.join(",")).unwrap(), fields);
        assert!(split_line("\"open").is_err());
    }

    #[test]
    fn parse_reads_back_what_write_wrote() {
        let written = rows(&[measurement()]);
        let mut out = Vec::new();
        write(&mut out, &written).unwrap();
        let read = parse(&String::from_utf8(out).unwrap()).unwrap();
        assert_eq!(read, written);
    }

    #[test]
    fn parse_rejects_a_wrong_header_field_count_or_number() {
        assert!(parse("a,b\n").is_err());
        assert!(parse("").is_err());
        assert!(parse(&format!("{HEADER}\nepoll,1,1,select_median,1\n")).is_err());
        assert!(parse(&format!("{HEADER}\nepoll,1,1,select_median,fast,ns\n")).is_err());
    }
}
