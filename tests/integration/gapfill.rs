//! Gap filling in SQL (`date_bin_gapfill`, `date_bin_gapfill_scheduled`, `locf`,
//! `interpolate`) on the sample bars.

use datafusion::prelude::SessionContext;
use timeseries_table_core::datafusion::{register_opened, session_context};

use crate::common::{sql_err, sql_ok};
use crate::sql_examples::bars_session;

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let table = sql_ok(ctx, sql).await;
    table.lines().skip(3).filter(|l| !l.starts_with('+')).map(str::to_string).collect()
}

/// The same fill computed independently in plain SQL: a generated calendar crossed with
/// the series, left-joined to the aggregate, then carried forward and interpolated with
/// window functions.
fn calendar_sql(range: &str, first: &str, last: &str, stride: &str) -> String {
    let ns = |e: &str| format!("CAST(arrow_cast({e}, 'Int64') AS DOUBLE)");
    format!(
        "WITH calendar AS (
           SELECT arrow_cast(value, 'Timestamp(Nanosecond, Some(\"UTC\"))') AS bin
           FROM generate_series(TIMESTAMP '{first}', TIMESTAMP '{last}', INTERVAL '{stride}')),
         series AS (SELECT DISTINCT symbol FROM bars WHERE {range}),
         agg AS (
           SELECT symbol, date_bin(INTERVAL '{stride}', ts) AS bin, avg(close) AS value
           FROM bars WHERE {range} GROUP BY symbol, date_bin(INTERVAL '{stride}', ts)),
         grid AS (
           SELECT s.symbol, c.bin, a.value FROM series s CROSS JOIN calendar c
           LEFT JOIN agg a ON a.symbol = s.symbol AND a.bin = c.bin),
         sides AS (
           SELECT symbol, bin, value,
             last_value(value) IGNORE NULLS OVER w_before AS v0,
             last_value(CASE WHEN value IS NOT NULL THEN bin END) IGNORE NULLS OVER w_before AS t0,
             first_value(value) IGNORE NULLS OVER w_after AS v1,
             first_value(CASE WHEN value IS NOT NULL THEN bin END) IGNORE NULLS OVER w_after AS t1
           FROM grid
           WINDOW w_before AS (PARTITION BY symbol ORDER BY bin ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
                  w_after AS (PARTITION BY symbol ORDER BY bin ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING))
         SELECT symbol, bin, round(value, 9) AS value, round(v0, 9) AS carried,
           round(CASE WHEN value IS NOT NULL THEN value
                      ELSE v0 + (v1 - v0) * (({b} - {t0}) / ({t1} - {t0})) END, 9) AS interpolated
         FROM sides ORDER BY symbol, bin",
        b = ns("bin"),
        t0 = ns("t0"),
        t1 = ns("t1"),
    )
}

fn gapfill_sql(range: &str, stride: &str) -> String {
    format!(
        "SELECT symbol, date_bin_gapfill(INTERVAL '{stride}', ts) AS bin, round(avg(close), 9) AS value,
                round(locf(avg(close)), 9) AS carried, round(interpolate(avg(close)), 9) AS interpolated
         FROM bars WHERE {range} GROUP BY symbol, bin ORDER BY symbol, bin"
    )
}

/// Every symbol, filled separately, equals the calendar join: over the first day (two
/// symbols not yet listed, one halted), over the whole week at 5 minutes (nights, a weekend
/// and MSFT's missing Friday), and at a stride that does not divide the hour.
#[tokio::test]
async fn fills_like_a_calendar_join() {
    let ctx = bars_session().await;
    for (range, first, last, stride) in [
        (
            "ts >= '2024-01-02T14:00:00Z' AND ts < '2024-01-02T22:00:00Z'",
            "2024-01-02T14:00:00",
            "2024-01-02T21:55:00",
            "5 minutes",
        ),
        (
            "ts >= '2024-01-02T00:00:00Z' AND ts < '2024-01-09T00:00:00Z'",
            "2024-01-02T00:00:00",
            "2024-01-08T23:55:00",
            "5 minutes",
        ),
        (
            "ts BETWEEN '2024-01-03T15:00:00Z' AND '2024-01-03T19:00:00Z'",
            "2024-01-03T14:54:00",
            "2024-01-03T18:59:00",
            "7 minutes",
        ),
    ] {
        let ours = rows(&ctx, &gapfill_sql(range, stride)).await;
        let reference = rows(&ctx, &calendar_sql(range, first, last, stride)).await;
        assert!(ours.len() > 90, "{range}: {} rows", ours.len());
        let filled = ours.iter().filter(|r| r.split('|').nth(3).is_some_and(|v| v.trim().is_empty())).count();
        assert!(filled > 0, "{range}: the range should hold gaps");
        if let Some(at) = ours.iter().zip(&reference).position(|(a, b)| a != b) {
            panic!("{range}: row {at} differs:\n  gap fill: {}\n  calendar: {}", ours[at], reference[at]);
        }
        assert_eq!(ours.len(), reference.len(), "{range}");
    }
}

/// `date_bin_gapfill_scheduled` inserts only bins that meet a session of the table's
/// schedule (New York, Mon-Fri 09:30-16:00): MSFT's missing Friday is filled, the nights
/// and the weekend are not. An explicit schedule and `'always'` override it.
#[tokio::test]
async fn scheduled_fill_keeps_to_sessions() {
    let ctx = bars_session().await;
    let query = |function: &str, stride: &str| {
        format!(
            "SELECT {function}(INTERVAL '{stride}', ts) AS bin, count(close) AS bars, locf(avg(close)) AS close \
             FROM bars WHERE symbol = 'MSFT' AND ts >= '2024-01-04T00:00:00Z' AND ts < '2024-01-09T00:00:00Z' \
             GROUP BY bin ORDER BY bin"
        )
    };
    let days = |rows: &[String]| {
        rows.iter().map(|r| r.split('|').nth(1).unwrap().trim()[..10].to_string()).collect::<Vec<_>>()
    };
    let every_day = rows(&ctx, &query("date_bin_gapfill", "1 day")).await;
    assert_eq!(days(&every_day), ["2024-01-04", "2024-01-05", "2024-01-06", "2024-01-07", "2024-01-08"]);
    let scheduled = rows(&ctx, &query("date_bin_gapfill_scheduled", "1 day")).await;
    assert_eq!(days(&scheduled), ["2024-01-04", "2024-01-05", "2024-01-08"], "{scheduled:?}");
    // The missing Friday is there, empty, with Thursday's close carried.
    let friday: Vec<&str> = scheduled[1].split('|').map(str::trim).collect();
    let thursday: Vec<&str> = scheduled[0].split('|').map(str::trim).collect();
    assert_eq!((friday[2], friday[3]), ("", thursday[3]), "{scheduled:?}");

    // At one hour: 7 session hours a day (09:00-16:00 local meet the session) on 3 weekdays.
    let hourly = rows(&ctx, &query("date_bin_gapfill_scheduled", "1 hour")).await;
    assert_eq!(hourly.len(), 3 * 7, "{hourly:?}");
    let every_hour = rows(&ctx, &query("date_bin_gapfill", "1 hour")).await;
    assert_eq!(every_hour.len(), 5 * 24);

    let explicit = "SELECT date_bin_gapfill_scheduled(INTERVAL '1 day', ts, '{schedule}') AS bin, count(close) \
                    FROM bars WHERE symbol = 'MSFT' AND ts >= '2024-01-04T00:00:00Z' AND ts < '2024-01-09T00:00:00Z' \
                    GROUP BY bin ORDER BY bin";
    let weekend_too = rows(&ctx, &explicit.replace("{schedule}", "UTC; daily 00:00-24:00; closed 2024-01-06")).await;
    assert_eq!(days(&weekend_too), ["2024-01-04", "2024-01-05", "2024-01-07", "2024-01-08"]);
    assert_eq!(rows(&ctx, &explicit.replace("{schedule}", "always")).await.len(), 5);

    let plan = sql_ok(&ctx, &format!("EXPLAIN {}", query("date_bin_gapfill_scheduled", "1 day"))).await;
    assert!(
        plan.contains("GapFill:") && plan.contains("scheduled bins only") && plan.contains("GapFillExec"),
        "{plan}"
    );
}

/// Each mistake is one clear planning error.
#[tokio::test]
async fn bad_gap_fill_queries_are_refused() {
    let ctx = bars_session().await;
    let cases = [
        (
            "SELECT date_bin_gapfill(INTERVAL '1 hour', ts) AS b, avg(close) FROM bars GROUP BY b",
            "gap filling needs a time range, and the WHERE clause gives ts both a lower and an upper bound",
        ),
        (
            "SELECT date_bin_gapfill(INTERVAL '1 hour', ts) AS b, avg(close) FROM bars WHERE ts >= '2024-01-03T00:00:00Z' GROUP BY b",
            "gives ts an upper bound",
        ),
        (
            "SELECT locf(close) FROM bars",
            "locf() may only be used in the SELECT list of a gap-filling query",
        ),
        (
            "SELECT symbol, interpolate(avg(close)) FROM bars GROUP BY symbol",
            "interpolate() may only be used in the SELECT list of a gap-filling query",
        ),
        (
            "SELECT date_bin_gapfill(INTERVAL '1 hour', ts) FROM bars",
            "date_bin_gapfill() may only be used as a GROUP BY expression",
        ),
        (
            "SELECT date_bin_gapfill(INTERVAL '1 month', ts) AS b, count(*) FROM bars \
             WHERE ts >= '2024-01-03T00:00:00Z' AND ts < '2024-01-04T00:00:00Z' GROUP BY b",
            "needs a fixed stride",
        ),
        (
            "SELECT symbol, date_bin_gapfill(INTERVAL '1 hour', ts) AS b, locf(symbol) FROM bars \
             WHERE ts >= '2024-01-03T00:00:00Z' AND ts < '2024-01-04T00:00:00Z' GROUP BY symbol, b",
            "locf() takes one aggregate of the gap-filling query",
        ),
        (
            "SELECT date_bin_gapfill(INTERVAL '1 hour', ts) AS b, interpolate(min(symbol)) FROM bars \
             WHERE ts >= '2024-01-03T00:00:00Z' AND ts < '2024-01-04T00:00:00Z' GROUP BY b",
            "interpolate() needs a numeric aggregate",
        ),
        (
            "SELECT date_bin_gapfill(INTERVAL '1 second', ts) AS b, count(*) FROM bars \
             WHERE ts >= '2000-01-01T00:00:00Z' AND ts < '2024-01-04T00:00:00Z' GROUP BY b",
            "would insert more than",
        ),
        (
            "SELECT date_bin_gapfill_scheduled(INTERVAL '1 hour', ts, 'Mon-Fri 25:00-26:00') AS b, count(*) FROM bars \
             WHERE ts >= '2024-01-03T00:00:00Z' AND ts < '2024-01-04T00:00:00Z' GROUP BY b",
            "date_bin_gapfill_scheduled():",
        ),
    ];
    for (sql, expected) in cases {
        let message = sql_err(&ctx, sql).await;
        assert!(message.contains(expected), "{sql}\n  gave: {message}\n  expected: {expected}");
    }
}

/// Inserted rows hold NULL aggregates also when read through a CTE: every plan node above
/// the fill declares those columns nullable, so `IS NULL` is not simplified away.
#[tokio::test]
async fn filled_columns_are_nullable_above_the_fill() {
    let ctx = bars_session().await;
    let sql = "WITH g AS (SELECT date_bin_gapfill(INTERVAL '15 minutes', ts) AS bin, count(close) AS n FROM bars \
               WHERE symbol = 'AAPL' AND ts >= '2024-01-02T16:00:00Z' AND ts < '2024-01-02T17:45:00Z' GROUP BY bin) \
               SELECT bin FROM g WHERE n IS NULL ORDER BY bin";
    let halted = rows(&ctx, sql).await;
    assert_eq!(halted.len(), 3, "16:30, 16:45 and 17:00 are inside AAPL's halt: {halted:?}");
    assert!(halted[0].contains("16:30:00"), "{halted:?}");
}

/// A table without a schedule cannot fill "scheduled" bins without being told the schedule.
#[tokio::test]
async fn scheduled_fill_needs_a_schedule() {
    let (_dir, location) = crate::common::temp_location();
    let mut table = crate::common::new_table(location, "1m").await;
    table.append(vec![crate::common::minute_bars(&["A"], crate::common::T0, 30)]).await.unwrap();
    let ctx = session_context();
    register_opened(&ctx, "t", table).unwrap();
    let range = "ts >= '2024-01-01T00:00:00Z' AND ts < '2024-01-01T01:00:00Z'";
    let message = sql_err(
        &ctx,
        &format!("SELECT date_bin_gapfill_scheduled(INTERVAL '10 minutes', ts) AS b, count(*) FROM t WHERE {range} GROUP BY b"),
    )
    .await;
    assert!(message.contains("the table has no schedule"), "{message}");
    let given = format!(
        "SELECT date_bin_gapfill_scheduled(INTERVAL '10 minutes', ts, 'UTC; daily 00:00-00:40') AS b, count(*) AS n \
         FROM t WHERE {range} GROUP BY b ORDER BY b"
    );
    // Rows at 00:00-00:29 (three bins of data), then 00:30 inserted; 00:40 and 00:50 are outside.
    let filled = rows(&ctx, &given).await;
    assert_eq!(filled.len(), 4, "{filled:?}");
    assert!(filled[3].contains("00:30:00") && filled[3].trim_end_matches('|').trim().ends_with('|'), "{filled:?}");
}
