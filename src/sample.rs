//! Deterministic sample data: one-minute market bars for a set of symbols over trading
//! days, with deliberate gaps (trading halts, late listings, a missing day). Used by
//! `tsq demo`, the SQL examples' golden tests and the benchmarks, so all of them talk
//! about the same data.
//!
//! Pure; no I/O.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// 2024-01-02 (a Tuesday) 00:00 UTC, in milliseconds.
pub const FIRST_DAY_MS: i64 = 1_704_153_600_000;
/// Session open, 14:30 UTC (09:30 New York in winter), in minutes after midnight.
const OPEN_MINUTE: i64 = 14 * 60 + 30;
/// A regular session: 390 one-minute bars.
pub const SESSION_MINUTES: i64 = 390;

/// When the sample expects bars: New York's regular session on weekdays (its bars are
/// at 14:30-21:00 UTC, which is 09:30-16:00 in New York in January and February).
pub const SCHEDULE: &str = "America/New_York; Mon-Fri 09:30-16:00";

const TICKERS: [&str; 40] = [
    "AAPL", "MSFT", "AMZN", "GOOG", "META", "NVDA", "TSLA", "JPM", "V", "JNJ", "WMT", "PG", "MA", "HD", "XOM", "CVX",
    "KO", "PEP", "ABBV", "MRK", "COST", "AVGO", "ORCL", "CSCO", "ADBE", "CRM", "NFLX", "INTC", "AMD", "QCOM", "TXN",
    "IBM", "BA", "CAT", "GS", "MS", "DIS", "NKE", "MCD", "SBUX",
];

/// A deterministic market-bar dataset description.
#[derive(Debug, Clone)]
pub struct MarketBars {
    /// Ticker of each symbol; a symbol's index here decides its gaps.
    pub symbols: Vec<String>,
    /// Number of trading days (weekdays) starting 2024-01-02.
    pub days: usize,
}

impl MarketBars {
    /// `symbols` symbols (real tickers first, then `S040`, `S041`, ...) over `days` trading days.
    pub fn new(symbols: usize, days: usize) -> Self {
        let symbols =
            (0..symbols).map(|i| TICKERS.get(i).map_or_else(|| format!("S{i:03}"), |t| t.to_string())).collect();
        MarketBars { symbols, days }
    }

    /// `ts` (milliseconds, UTC), `symbol`, `open`, `high`, `low`, `close`, `volume`; none nullable.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
            Field::new("symbol", DataType::Utf8, false),
            Field::new("open", DataType::Float64, false),
            Field::new("high", DataType::Float64, false),
            Field::new("low", DataType::Float64, false),
            Field::new("close", DataType::Float64, false),
            Field::new("volume", DataType::Int64, false),
        ]))
    }

    /// Midnight UTC of trading day `day` (weekdays only), in milliseconds.
    pub fn day_start_ms(day: usize) -> i64 {
        let weeks = day as i64 / 5;
        let weekday_offset = day as i64 % 5; // 2024-01-02 is a Tuesday: Tue..Fri then Mon
        let mut calendar = weeks * 7 + weekday_offset;
        if weekday_offset >= 4 {
            calendar += 2; // skip Saturday and Sunday
        }
        FIRST_DAY_MS + calendar * DAY_MS
    }

    /// The deliberate holes: whether `symbol` has a bar at `minute` of trading day `day`.
    pub fn has_bar(&self, symbol: usize, day: usize, minute: i64) -> bool {
        // Every third symbol lists on day 2.
        if symbol % 3 == 2 && day < 2 {
            return false;
        }
        // Symbol 1 misses all of day 3 (a feed outage).
        if symbol == 1 && day == 3 {
            return false;
        }
        // A 45-minute trading halt for one symbol per day.
        if symbol == (day * 7) % self.symbols.len().max(1) && (120..165).contains(&minute) {
            return false;
        }
        true
    }

    /// All bars of trading day `day`, in time order (all symbols per minute).
    pub fn day_batch(&self, day: usize) -> RecordBatch {
        let start = Self::day_start_ms(day) + OPEN_MINUTE * MINUTE_MS;
        let mut ts = Vec::new();
        let mut symbol = Vec::new();
        let (mut open, mut high, mut low, mut close, mut volume) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for minute in 0..SESSION_MINUTES {
            for (s, name) in self.symbols.iter().enumerate() {
                if !self.has_bar(s, day, minute) {
                    continue;
                }
                let t = start + minute * MINUTE_MS;
                let (o, h, l, c, v) = bar(s, t);
                ts.push(t);
                symbol.push(name.as_str());
                open.push(o);
                high.push(h);
                low.push(l);
                close.push(c);
                volume.push(v);
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
            Arc::new(StringArray::from(symbol)),
            Arc::new(Float64Array::from(open)),
            Arc::new(Float64Array::from(high)),
            Arc::new(Float64Array::from(low)),
            Arc::new(Float64Array::from(close)),
            Arc::new(Int64Array::from(volume)),
        ];
        // The columns are built to match the schema, so this cannot fail.
        RecordBatch::try_new(Self::schema(), columns).unwrap_or_else(|_| RecordBatch::new_empty(Self::schema()))
    }
}

/// Creates the sample table (bucket `1m`, entity column `symbol`, schedule [`SCHEDULE`])
/// at `location` and appends one segment per trading day; `on_day` is told after each
/// append.
pub async fn create_sample_table(
    location: crate::storage::TableLocation,
    bars: &MarketBars,
    mut on_day: impl FnMut(usize, &crate::table::AppendResult),
) -> crate::Result<crate::table::TimeSeriesTable> {
    let spec = crate::metadata::TimeIndexSpec::new(
        "ts",
        crate::metadata::TimeBucket::try_new(1, crate::metadata::BucketUnit::Minute)?,
    )
    .with_entity_columns(["symbol"]);
    let meta = crate::metadata::TableMeta::try_new(spec)?.with_schedule(Some(SCHEDULE.parse()?));
    let mut table = crate::table::TimeSeriesTable::create(location, meta).await?;
    for day in 0..bars.days {
        let result = table.append(vec![bars.day_batch(day)]).await?;
        on_day(day, &result);
    }
    Ok(table)
}

/// A price path that is a deterministic function of (symbol, time).
fn bar(symbol: usize, t_ms: i64) -> (f64, f64, f64, f64, i64) {
    let base = 50.0 + (symbol as f64) * 7.5;
    let minute = (t_ms / MINUTE_MS) as f64;
    let drift = (minute / 390.0 + symbol as f64).sin() * base * 0.05;
    let noise = (mix(symbol as u64, t_ms as u64) % 1000) as f64 / 1000.0 - 0.5;
    let open = ((base + drift) * 100.0).round() / 100.0;
    let close = ((open + noise) * 100.0).round() / 100.0;
    let high = (open.max(close) * 100.0 + 5.0).round() / 100.0;
    let low = (open.min(close) * 100.0 - 5.0).round() / 100.0;
    let volume = 100 + (mix(t_ms as u64, symbol as u64) % 5_000) as i64;
    (open, high, low, close, volume)
}

/// SplitMix64 over two inputs: cheap, stable across platforms.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_skip_weekends_and_data_is_deterministic() {
        // Day 3 is Friday 2024-01-05, day 4 Monday 2024-01-08.
        assert_eq!(MarketBars::day_start_ms(4) - MarketBars::day_start_ms(3), 3 * DAY_MS);
        let bars = MarketBars::new(6, 5);
        assert_eq!(bars.day_batch(1), bars.day_batch(1));
        assert!(!bars.has_bar(2, 0, 0) && bars.has_bar(2, 2, 0));
        assert!(bars.day_batch(0).num_rows() < 6 * SESSION_MINUTES as usize);
    }
}
