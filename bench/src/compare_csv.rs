//! The CSV form of a comparison: one row per backend × N × A × metric, and the reader the
//! `check-csv` command uses. Also the two pieces the `peers` and `echo` CSVs share with it:
//! [`write_rows`] and the value format of [`write_value`].
//!
//! Columns: `backend,n,active,metric,value,unit`, the fields of [`Row`]. The `csv` crate quotes
//! as RFC 4180 says (a field holding a comma, a quote or a line break is put in quotes, its
//! quotes doubled).

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize, Serializer};

use crate::metric::{Measurement, Metric};

/// The header `check-csv` expects, the names of [`Row`]'s fields in order.
pub const HEADER: [&str; 6] = ["backend", "n", "active", "metric", "value", "unit"];

/// One data row, as written and as read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    #[serde(serialize_with = "write_value")]
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

/// Write `rows` to `out` as CSV, after a header made of the row type's field names (so no
/// header when there is no row).
///
/// # Errors
/// Those of `out`.
pub fn write_rows<R: Serialize>(
    out: impl Write,
    rows: impl IntoIterator<Item = R>,
) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    for row in rows {
        writer.serialize(row)?;
    }
    writer.flush()
}

/// Serialize a value as the CSVs hold it: integers without a fraction, others with 3 decimals
/// (for `#[serde(serialize_with = "write_value")]`).
///
/// # Errors
/// Those of `serializer`.
pub fn write_value<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    let v = *value;
    if v.fract() == 0.0 && v.abs() < 1e15 {
        serializer.serialize_str(&format!("{v:.0}"))
    } else {
        serializer.serialize_str(&format!("{v:.3}"))
    }
}

/// Read a whole CSV written by [`write_rows`] with [`Row`]s. Whitespace around fields and
/// blank lines are ignored.
///
/// # Errors
/// `InvalidData` for a header other than [`HEADER`], and, naming the line, for a wrong number
/// of fields or a number that does not parse; the error of `input` if reading fails.
pub fn read(input: impl Read) -> io::Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader.headers().map_err(invalid)?;
    if !header.iter().eq(HEADER) {
        let found: Vec<&str> = header.iter().collect();
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "expected the header {:?}, found {:?}",
                HEADER.join(","),
                found.join(",")
            ),
        ));
    }
    let header = header.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(invalid)?;
        rows.push(
            record
                .deserialize(Some(&header))
                .map_err(|e| bad_field(&record, &e))?,
        );
    }
    Ok(rows)
}

/// A CSV error as an `io::Error`: the reader's own if it is one, else `InvalidData` with the
/// `csv` crate's message (which names the line).
fn invalid(error: csv::Error) -> io::Error {
    if error.is_io_error() {
        return io::Error::from(error);
    }
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// `InvalidData` naming the line, the column and the value of `record` that did not parse.
fn bad_field(record: &csv::StringRecord, error: &csv::Error) -> io::Error {
    let line = record.position().map_or(0, csv::Position::line);
    let message = match error.kind() {
        csv::ErrorKind::Deserialize { err, .. } => {
            let column = err.field().map_or(usize::MAX, |i| i as usize);
            match (HEADER.get(column), record.get(column)) {
                (Some(name), Some(value)) => {
                    format!("line {line}: {name} {value:?}: {}", err.kind())
                }
                _ => format!("line {line}: {err}"),
            }
        }
        _ => format!("line {line}: {error}"),
    };
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

    fn written(rows: &[Row]) -> String {
        let mut out = Vec::new();
        write_rows(&mut out, rows).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn output_starts_with_the_header_and_has_one_row_per_metric() {
        let text = written(&rows(&[measurement()]));
        assert_eq!(
            text,
            "backend,n,active,metric,value,unit\n\
             epoll,100,10,select_median,1234,ns\n\
             epoll,100,10,syscalls_per_select,1.500,syscalls\n"
        );
        assert_eq!(text.lines().next(), Some(HEADER.join(",").as_str()));
    }

    #[test]
    fn fields_with_commas_quotes_or_line_breaks_are_quoted_and_read_back() {
        let mut row = rows(&[measurement()]).remove(0);
        row.backend = "a,b".to_string();
        row.metric = "say \"hi\"".to_string();
        row.unit = "two\nlines".to_string();
        let text = written(std::slice::from_ref(&row));
        assert!(
            text.ends_with("\"a,b\",100,10,\"say \"\"hi\"\"\",1234,\"two\nlines\"\n"),
            "{text}"
        );
        assert_eq!(read(text.as_bytes()).unwrap(), vec![row]);
    }

    #[test]
    fn read_gets_back_what_write_rows_wrote() {
        let rows = rows(&[measurement()]);
        assert_eq!(read(written(&rows).as_bytes()).unwrap(), rows);
    }

    #[test]
    fn read_takes_crlf_blank_lines_and_spaces() {
        let text = "backend,n,active,metric,value,unit \r\n\r\npoll, 1,1,select_median,2.5,ns\r\n";
        let rows = read(text.as_bytes()).unwrap();
        assert_eq!(
            (rows[0].backend.as_str(), rows[0].n, rows[0].value),
            ("poll", 1, 2.5)
        );
    }

    #[test]
    fn read_rejects_a_wrong_header_field_count_or_number() {
        let header = HEADER.join(",");
        assert!(read("a,b\n".as_bytes()).is_err());
        assert!(read("".as_bytes()).is_err());
        let short = read(format!("{header}\nepoll,1,1,select_median,1\n").as_bytes());
        assert!(short.unwrap_err().to_string().contains("line: 2"));
        let bad = read(format!("{header}\nepoll,1,1,select_median,fast,ns\n").as_bytes());
        assert_eq!(
            bad.unwrap_err().to_string(),
            "line 2: value \"fast\": invalid float literal"
        );
        let negative = read(format!("{header}\nepoll,-1,1,select_median,1,ns\n").as_bytes());
        assert!(negative
            .unwrap_err()
            .to_string()
            .starts_with("line 2: n \"-1\""));
    }
}
