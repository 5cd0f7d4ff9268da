//! The heatmap as handwritten SVG: title and notes, one row of cells per entity (runs
//! of equal cells drawn as one rectangle with a tooltip), the share covered per row, a
//! dated time axis whose tick spacing adapts to the window, and a legend. Pure; no I/O.

use std::fmt::Write as _;

use super::{colour, HeatGrid};
use crate::output::{fmt_pct, fmt_span};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn datetime(nanos: i64, format: &str) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos).format(format).to_string()
}

const PLOT_WIDTH: f64 = 960.0;
const FONT: &str = "font-family=\"Helvetica, Arial, sans-serif\"";

/// The grid as an SVG document with a title, entity labels, a dated time axis and a legend.
pub fn render_svg(grid: &HeatGrid, title: &str) -> String {
    let rows = grid.entities.len();
    let row_h = if rows <= 30 { 18.0 } else { 12.0 };
    let label_w = grid.entities.iter().map(|e| e.chars().count()).max().unwrap_or(4).clamp(4, 24) as f64 * 7.5 + 16.0;
    let (left, top) = (label_w + 8.0, 78.0);
    let gaps: Vec<f64> = grid
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| if c.break_before { break_width(c.start - grid.columns[i - 1].end) } else { 0.0 })
        .collect();
    let total_gap: f64 = gaps.iter().sum();
    let gap_scale = if total_gap > PLOT_WIDTH * 0.15 { PLOT_WIDTH * 0.15 / total_gap } else { 1.0 };
    let cols = grid.columns.len().max(1) as f64;
    let cell_w = (PLOT_WIDTH - total_gap * gap_scale) / cols;
    let mut xs = Vec::with_capacity(grid.columns.len());
    let mut x = left;
    for gap in &gaps {
        x += gap * gap_scale;
        xs.push(x);
        x += cell_w;
    }
    let plot_h = rows as f64 * row_h;
    let width = left + PLOT_WIDTH + 70.0;
    let height = top + plot_h.max(row_h) + 120.0;
    let mut s = String::new();
    let _ = writeln!(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">");
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{left:.0}\" y=\"28\" {FONT} font-size=\"18\" font-weight=\"bold\" fill=\"#1a1a1a\">{}</text>",
        escape(title)
    );
    let mut subtitle = format!(
        "{} to {} UTC · {} entit{} · each column {} · colour = share of buckets with data",
        datetime(grid.window.0, "%Y-%m-%d %H:%M"),
        datetime(grid.window.1, "%Y-%m-%d %H:%M"),
        grid.total_entities,
        if grid.total_entities == 1 { "y" } else { "ies" },
        fmt_span(grid.column_nanos),
    );
    if grid.entities.len() < grid.total_entities {
        let _ = write!(subtitle, " · showing the {} least covered", grid.entities.len());
    }
    let _ = writeln!(
        s,
        "<text x=\"{left:.0}\" y=\"48\" {FONT} font-size=\"12\" fill=\"#555\">{}</text>",
        escape(&subtitle)
    );
    if grid.collapsed_periods > 0 {
        let note = format!(
            "{} idle stretch{} ({} in total) when no shown entity had data are left out; white gaps mark them (wider = longer)",
            grid.collapsed_periods,
            if grid.collapsed_periods == 1 { "" } else { "es" },
            fmt_span(grid.collapsed_nanos)
        );
        let _ = writeln!(
            s,
            "<text x=\"{left:.0}\" y=\"64\" {FONT} font-size=\"11\" fill=\"#777\">{}</text>",
            escape(&note)
        );
    }
    if grid.columns.is_empty() || rows == 0 {
        let _ = writeln!(
            s,
            "<text x=\"{left:.0}\" y=\"{:.0}\" {FONT} font-size=\"14\" fill=\"#555\">no data in this window</text>",
            top + 14.0
        );
        s.push_str("</svg>\n");
        return s;
    }

    // Rows: label, cells (runs of equal value drawn as one rectangle), overall ratio.
    for (r, name) in grid.entities.iter().enumerate() {
        let y = top + r as f64 * row_h;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" {FONT} font-size=\"11\" text-anchor=\"end\" fill=\"#222\">{}</text>",
            left - 6.0,
            y + row_h * 0.72,
            escape(name)
        );
        let row = &grid.cells[r];
        let mut i = 0;
        while i < row.len() {
            let mut j = i + 1;
            // NaN (not scheduled) runs merge too.
            while j < row.len() && row[j].total_cmp(&row[i]).is_eq() && !grid.columns[j].break_before {
                j += 1;
            }
            let w = xs[j - 1] + cell_w - xs[i];
            let tip = format!(
                "{name} · {} – {} · {}",
                datetime(grid.columns[i].start, "%Y-%m-%d %H:%M"),
                datetime(grid.columns[j - 1].end, "%Y-%m-%d %H:%M"),
                if row[i].is_nan() { "not scheduled".to_string() } else { fmt_pct(row[i]) }
            );
            let _ = writeln!(
                s,
                "<rect x=\"{:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"{}\"><title>{}</title></rect>",
                xs[i],
                y + 1.0,
                w,
                row_h - 2.0,
                colour(row[i]),
                escape(&tip)
            );
            i = j;
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" {FONT} font-size=\"10\" fill=\"#555\">{}</text>",
            left + PLOT_WIDTH + 8.0,
            y + row_h * 0.72,
            fmt_pct(grid.row_ratio[r])
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" {FONT} font-size=\"10\" fill=\"#555\">in view</text>",
        left + PLOT_WIDTH + 8.0,
        top - 6.0
    );

    // Time axis: a labelled tick at the first column of each new period.
    let axis_y = top + plot_h + 4.0;
    let _ = writeln!(
        s,
        "<line x1=\"{left:.1}\" y1=\"{axis_y:.1}\" x2=\"{:.1}\" y2=\"{axis_y:.1}\" stroke=\"#999\"/>",
        left + PLOT_WIDTH
    );
    let kind = tick_kind(grid);
    let (tick_format, context_format) = kind.formats();
    let mut last_x = f64::NEG_INFINITY;
    let mut last_period = None;
    let mut last_context = String::new();
    for (i, c) in grid.columns.iter().enumerate() {
        // A tick only where a period starts; one too close to the previous is skipped.
        let p = kind.period(c.start);
        if last_period.replace(p) == Some(p) || xs[i] - last_x < 40.0 {
            continue;
        }
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{axis_y:.1}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#999\"/>",
            xs[i],
            axis_y + 5.0
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" {FONT} font-size=\"10\" fill=\"#333\">{}</text>",
            xs[i] + 1.0,
            axis_y + 16.0,
            datetime(c.start, tick_format)
        );
        let context = if context_format.is_empty() { String::new() } else { datetime(c.start, context_format) };
        if context != last_context {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" {FONT} font-size=\"10\" font-weight=\"bold\" fill=\"#333\">{}</text>",
                xs[i] + 1.0,
                axis_y + 28.0,
                context
            );
            last_context = context;
        }
        last_x = xs[i];
    }
    let _ = writeln!(
        s,
        "<text x=\"{left:.0}\" y=\"{:.1}\" {FONT} font-size=\"11\" fill=\"#555\">time (UTC)</text>",
        axis_y + 46.0
    );

    // Legend: swatches from no data to fully covered.
    let ly = axis_y + 62.0;
    let _ = writeln!(
        s,
        "<text x=\"{left:.0}\" y=\"{:.1}\" {FONT} font-size=\"11\" fill=\"#333\">buckets with data:</text>",
        ly + 11.0
    );
    for (i, f) in [0.0, 0.25, 0.5, 0.75, 1.0].iter().enumerate() {
        let lx = left + 110.0 + i as f64 * 70.0;
        let label = if *f == 0.0 { "none".to_string() } else { format!("{:.0}%", f * 100.0) };
        let _ = writeln!(s, "<rect x=\"{lx:.1}\" y=\"{ly:.1}\" width=\"22\" height=\"14\" fill=\"{}\" stroke=\"#bbb\" stroke-width=\"0.5\"/>", colour(*f));
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" {FONT} font-size=\"11\" fill=\"#333\">{label}</text>",
            lx + 27.0,
            ly + 11.0
        );
    }
    if grid.cells.iter().flatten().any(|f| f.is_nan()) {
        let lx = left + 110.0 + 5.0 * 70.0;
        let _ = writeln!(s, "<rect x=\"{lx:.1}\" y=\"{ly:.1}\" width=\"22\" height=\"14\" fill=\"{}\" stroke=\"#bbb\" stroke-width=\"0.5\"/>", colour(f64::NAN));
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" {FONT} font-size=\"11\" fill=\"#333\">not scheduled</text>",
            lx + 27.0,
            ly + 11.0
        );
    }
    s.push_str("</svg>\n");
    s
}

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

/// Spacing of the labelled ticks on the time axis.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tick {
    Hours(i64),
    Day,
    Week,
    Month,
    Year,
}

impl Tick {
    /// Which period `t` falls in; a tick goes where this changes.
    fn period(self, t: i64) -> i64 {
        use chrono::Datelike;
        let date = chrono::DateTime::from_timestamp_nanos(t);
        match self {
            Tick::Hours(h) => t.div_euclid(h * HOUR),
            Tick::Day => t.div_euclid(DAY),
            Tick::Week => (t - 4 * DAY).div_euclid(7 * DAY), // weeks start on Monday
            Tick::Month => date.year() as i64 * 12 + date.month0() as i64,
            Tick::Year => date.year() as i64,
        }
    }

    /// The label's two lines: the tick itself, and its wider context (day, month or
    /// year), which is only printed when it changes.
    fn formats(self) -> (&'static str, &'static str) {
        match self {
            Tick::Hours(_) => ("%H:%M", "%a %d %b %Y"),
            Tick::Day => ("%a %d", "%b %Y"),
            Tick::Week => ("%d %b", "%Y"),
            Tick::Month => ("%b", "%Y"),
            Tick::Year => ("%Y", ""),
        }
    }
}

/// The smallest tick spacing that leaves labels about 45 pixels apart on average.
fn tick_kind(grid: &HeatGrid) -> Tick {
    let distinct = |kind: Tick| {
        let mut count = 0;
        let mut last = None;
        for c in &grid.columns {
            let p = kind.period(c.start);
            if last != Some(p) {
                count += 1;
                last = Some(p);
            }
        }
        count
    };
    let wanted = (PLOT_WIDTH / 45.0) as usize;
    // Hour ticks print the date under the first tick of each day: only with few days.
    let few_days = distinct(Tick::Day) <= (PLOT_WIDTH / 110.0) as usize;
    let kinds = [Tick::Hours(1), Tick::Hours(3), Tick::Hours(6), Tick::Hours(12), Tick::Day, Tick::Week, Tick::Month];
    kinds
        .into_iter()
        .filter(|k| few_days || !matches!(k, Tick::Hours(_)))
        .find(|&k| distinct(k) <= wanted)
        .unwrap_or(Tick::Year)
}

/// Width of the white gap that marks an idle stretch: wider for longer ones.
fn break_width(idle_nanos: i64) -> f64 {
    if idle_nanos < DAY {
        3.0
    } else if idle_nanos < 7 * DAY {
        6.0
    } else {
        10.0
    }
}
