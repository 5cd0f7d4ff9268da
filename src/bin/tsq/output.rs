//! Printing: query results as aligned tables, CSV or JSON; small aligned text tables for
//! the summaries; number formatting; and turning an error chain into the one line that
//! `main` prints. No I/O other than writing to the writer it is given.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use datafusion::error::DataFusionError;
use timeseries_table_core::error::describe_query_error;
use timeseries_table_core::Error;

use crate::Format;

/// Writes the result of one statement in `format`; a table shows at most `limit` rows.
pub fn write_result(
    out: &mut dyn Write,
    schema: &Schema,
    batches: &[RecordBatch],
    format: Format,
    limit: Option<usize>,
) -> anyhow::Result<()> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if schema.fields().is_empty() {
        // DDL and similar statements: nothing to show.
        if format == Format::Table {
            writeln!(out, "OK")?;
        }
        return Ok(());
    }
    match format {
        Format::Table => {
            let shown = limit.unwrap_or(usize::MAX).min(rows);
            let mut kept = Vec::new();
            let mut left = shown;
            for batch in batches {
                if left == 0 {
                    break;
                }
                let take = left.min(batch.num_rows());
                kept.push(batch.slice(0, take));
                left -= take;
            }
            if kept.is_empty() {
                kept.push(RecordBatch::new_empty(schema.clone().into()));
            }
            writeln!(out, "{}", arrow::util::pretty::pretty_format_batches(&kept)?)?;
            let plural = if rows == 1 { "" } else { "s" };
            if shown < rows {
                writeln!(out, "({} row{plural}, first {shown} shown)", fmt_int(rows as u64))?;
            } else {
                writeln!(out, "({} row{plural})", fmt_int(rows as u64))?;
            }
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut *out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema.clone().into()))?;
            }
            for batch in batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?; // writes `[]` when there were no rows
            drop(writer);
            writeln!(out)?;
        }
    }
    Ok(())
}

/// A plain aligned text table: a header row, a dashed rule, then the rows. Columns whose
/// header is in `right` are right-aligned (numbers).
pub struct TextTable {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl TextTable {
    /// `columns` are (header, right-aligned) pairs.
    pub fn new(columns: &[(&str, bool)]) -> Self {
        TextTable {
            headers: columns.iter().map(|c| c.0.to_string()).collect(),
            right: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .zip(&self.right)
                .map(|((c, &w), &right)| if right { format!("{c:>w$}") } else { format!("{c:<w$}") })
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        writeln!(out, "{}", line(&self.headers))?;
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        writeln!(out, "{}", rule.join("  "))?;
        for row in &self.rows {
            writeln!(out, "{}", line(row))?;
        }
        Ok(())
    }
}

/// `1234567` as `1,234,567`.
pub fn fmt_int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count for people: `532 B`, `12.3 KiB`, `4.1 MiB` (as the progress bar shows them).
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A ratio as a percentage with one decimal (`99.7%`), never rounding a gap away to 100%.
pub fn fmt_pct(ratio: f64) -> String {
    let pct = ratio * 100.0;
    if pct < 100.0 && pct > 99.95 {
        return "99.9%".to_string();
    }
    format!("{pct:.1}%")
}

/// A duration in nanoseconds for people: `45m`, `2h 30m`, `3d 4h`.
pub fn fmt_span(nanos: i64) -> String {
    let secs = nanos / 1_000_000_000;
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .filter(|(v, _)| *v > 0)
        .map(|(v, u)| format!("{v}{u}"))
        .collect();
    if parts.is_empty() {
        format!("{}ms", nanos / 1_000_000)
    } else {
        parts.into_iter().take(2).collect::<Vec<_>>().join(" ")
    }
}

/// Whether the error is stdout having gone away (e.g. `tsq sql ... | head`): not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The error as one line: the context layers added by the binary, then the library's own
/// message (which already carries its cause, so its sources are not repeated).
pub fn describe_error(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let (text, last) = if let Some(e) = cause.downcast_ref::<Error>() {
            (e.describe(), true)
        } else if let Some(e) = cause.downcast_ref::<DataFusionError>() {
            (describe_query_error(e), true)
        } else {
            (cause.to_string(), false)
        };
        if !parts.last().is_some_and(|p| p.contains(text.trim())) {
            parts.push(text.trim().to_string());
        }
        if last {
            break;
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(fmt_int(0), "0");
        assert_eq!(fmt_int(1234567), "1,234,567");
        assert_eq!(fmt_int(100), "100");
        assert_eq!(fmt_bytes(2048), "2.0 KiB");
        assert_eq!(fmt_pct(0.99999), "99.9%");
        assert_eq!(fmt_pct(1.0), "100.0%");
        assert_eq!(fmt_span(45 * 60_000_000_000), "45m");
        assert_eq!(fmt_span(3 * 86_400_000_000_000 + 4 * 3_600_000_000_000 + 60_000_000_000), "3d 4h");
    }

    #[test]
    fn error_chain_is_one_line_without_repeats() {
        let lib = Error::InvalidInput { reason: "bad".into() };
        let err = anyhow::Error::new(lib).context("cannot append f.parquet to t");
        assert_eq!(describe_error(&err), "cannot append f.parquet to t: invalid input: bad");
    }
}
