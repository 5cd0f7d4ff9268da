//! Each inverted function agrees with DataFusion's evaluation over a sweep of times.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, TimestampNanosecondArray};
use arrow::datatypes::{Schema, TimeUnit};
use datafusion::common::DFSchema;
use datafusion::functions::expr_fn::{date_bin, date_part, date_trunc, to_date};
use datafusion::logical_expr::{binary_expr, cast, col, lit};
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_expr::execution_props::ExecutionProps;

use super::*;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;

use crate::metadata::time::parse_timestamp;

const MINUTE: i64 = 60_000_000_000;
const HOUR: i64 = 60 * MINUTE;

fn time(zone: Option<&str>) -> Field {
    Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, zone.map(Into::into)), false)
}

fn at(text: &str) -> i64 {
    parse_timestamp(text).unwrap()
}

fn instant(text: &str, zone: Option<&str>) -> ScalarValue {
    ScalarValue::TimestampNanosecond(Some(at(text)), zone.map(Into::into))
}

fn date(text: &str) -> ScalarValue {
    ScalarValue::Date32(Some((at(&format!("{text}T00:00:00Z")) / (24 * HOUR)) as i32))
}

/// `function op value` evaluated by DataFusion over a column of timestamps every
/// `step` across `[from, to)`, must hold exactly where the preimage says it does.
fn agrees_with_datafusion(
    function: Expr,
    field: &Field,
    op: Operator,
    value: ScalarValue,
    from: i64,
    to: i64,
    step: i64,
) {
    assert!(is_monotonic_of_time(&function, field), "{function} should be invertible");
    let (set, exact) = preimage(&function, field, op, &value).expect("invertible");
    let times: Vec<i64> = (from..to).step_by(step as usize).collect();
    let zone = match field.data_type() {
        DataType::Timestamp(_, zone) => zone.clone(),
        _ => None,
    };
    let schema = Arc::new(Schema::new(vec![field.clone()]));
    let column = TimestampNanosecondArray::from(times.clone()).with_timezone_opt(zone);
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(column)]).unwrap();
    let predicate = binary_expr(function.clone(), op, lit(value.clone()));
    let physical = create_physical_expr(
        &predicate,
        &DFSchema::try_from(schema).unwrap(),
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )
    .unwrap();
    let result = physical.evaluate(&batch).unwrap().into_array(times.len()).unwrap();
    let result = result.as_any().downcast_ref::<BooleanArray>().unwrap();
    let mut matched = 0;
    for (i, &t) in times.iter().enumerate() {
        assert_eq!(set.contains(t), result.value(i), "{predicate} at {t}: preimage {set:?}");
        matched += usize::from(result.value(i));
    }
    assert!(exact || !set.is_all(), "a useful set");
    assert!(matched > 0 || op == Operator::Eq, "the sweep should meet the predicate: {predicate}");
}

#[test]
fn cast_to_date_is_the_local_day() {
    for zone in [None, Some("America/New_York"), Some("+05:30")] {
        let field = time(zone);
        let day = cast(col("ts"), DataType::Date32);
        for op in [Operator::Eq, Operator::Lt, Operator::LtEq, Operator::Gt, Operator::GtEq, Operator::NotEq] {
            let (from, to) = (at("2024-01-09T00:00:00Z"), at("2024-01-12T00:00:00Z"));
            agrees_with_datafusion(day.clone(), &field, op, date("2024-01-10"), from, to, 7 * MINUTE);
        }
    }
    // In New York, 2024-01-10 runs from 05:00 to 05:00 UTC, exactly.
    let (set, exact) = preimage(
        &cast(col("ts"), DataType::Date32),
        &time(Some("America/New_York")),
        Operator::Eq,
        &date("2024-01-10"),
    )
    .unwrap();
    assert!(exact);
    assert_eq!(set, TimeSet::range(at("2024-01-10T05:00:00Z"), at("2024-01-11T05:00:00Z")));
}

#[test]
fn date_trunc_across_a_dst_change() {
    let zone = Some("America/New_York");
    let field = time(zone);
    // 2024-11-03 has 25 hours in New York; 2024-03-10 has 23.
    for (day, from, to) in [
        ("2024-11-03T04:00:00Z", "2024-11-02T12:00:00Z", "2024-11-04T12:00:00Z"),
        ("2024-03-10T05:00:00Z", "2024-03-09T12:00:00Z", "2024-03-11T12:00:00Z"),
    ] {
        for unit in ["day", "hour"] {
            let truncated = date_trunc(lit(unit), col("ts"));
            for op in [Operator::Eq, Operator::Lt, Operator::LtEq, Operator::Gt, Operator::GtEq] {
                agrees_with_datafusion(truncated.clone(), &field, op, instant(day, zone), at(from), at(to), 5 * MINUTE);
            }
        }
    }
    let (set, _) =
        preimage(&date_trunc(lit("day"), col("ts")), &field, Operator::Eq, &instant("2024-11-03T04:00:00Z", zone))
            .unwrap();
    let window = TimeSet::range(at("2000-01-01T00:00:00Z"), at("2100-01-01T00:00:00Z"));
    assert_eq!(set.intersect(&window), TimeSet::range(at("2024-11-03T04:00:00Z"), at("2024-11-04T05:00:00Z")));
}

#[test]
fn a_value_between_bins_has_no_equal_and_splits_the_order() {
    let field = time(None);
    let hour = date_trunc(lit("hour"), col("ts"));
    let half_past = instant("2024-01-10T10:30:00Z", None);
    let (from, to) = (at("2024-01-10T08:00:00Z"), at("2024-01-10T13:00:00Z"));
    for op in [Operator::Lt, Operator::LtEq, Operator::Gt, Operator::GtEq] {
        agrees_with_datafusion(hour.clone(), &field, op, half_past.clone(), from, to, MINUTE);
    }
    let (set, _) = preimage(&hour, &field, Operator::Eq, &half_past).unwrap();
    assert!(set.intersect(&TimeSet::range(from, to)).is_empty());
    let (set, _) = preimage(&hour, &field, Operator::Lt, &half_past).unwrap();
    assert_eq!(set.intersect(&TimeSet::range(from, to)), TimeSet::range(from, at("2024-01-10T11:00:00Z")));
}

#[test]
fn date_bin_and_to_date() {
    let field = time(Some("UTC"));
    let stride = lit(ScalarValue::new_interval_mdn(0, 0, 15 * MINUTE));
    let origin = lit(instant("2024-01-01T00:05:00Z", Some("UTC")));
    let (from, to) = (at("2024-01-10T09:00:00Z"), at("2024-01-10T11:00:00Z"));
    for binned in [
        date_bin(stride.clone(), col("ts"), origin),
        date_bin(stride, col("ts"), lit(instant("1970-01-01T00:00:00Z", Some("UTC")))),
    ] {
        for op in [Operator::Eq, Operator::Lt, Operator::GtEq] {
            agrees_with_datafusion(
                binned.clone(),
                &field,
                op,
                instant("2024-01-10T10:05:00Z", Some("UTC")),
                from,
                to,
                MINUTE,
            );
        }
    }
    let day = to_date(vec![col("ts")]);
    for op in [Operator::Eq, Operator::LtEq, Operator::Gt] {
        let (from, to) = (at("2024-01-09T00:00:00Z"), at("2024-01-12T00:00:00Z"));
        agrees_with_datafusion(day.clone(), &field, op, date("2024-01-10"), from, to, 13 * MINUTE);
    }
}

#[test]
fn only_monotonic_shapes_qualify() {
    let field = time(None);
    assert!(!is_monotonic_of_time(&date_part(lit("hour"), col("ts")), &field));
    assert!(!is_monotonic_of_time(&date_trunc(col("unit"), col("ts")), &field), "a column unit");
    assert!(!is_monotonic_of_time(&cast(col("ts"), DataType::Utf8), &field));
    assert!(!is_monotonic_of_time(&cast(col("other"), DataType::Date32), &field));
    let origin_moves =
        date_bin(lit(ScalarValue::new_interval_mdn(0, 0, HOUR)), lit(instant("2024-01-01T00:00:00Z", None)), col("ts"));
    assert!(!is_monotonic_of_time(&origin_moves, &field));
    assert!(is_monotonic_of_time(&cast(date_trunc(lit("day"), col("ts")), DataType::Date32), &field));
}

#[test]
fn edges_the_function_cannot_reach_stay_admitted() {
    // date_trunc('year') of the earliest nanosecond timestamp falls before it: no value.
    let field = time(None);
    let (set, exact) =
        preimage(&date_trunc(lit("year"), col("ts")), &field, Operator::Eq, &instant("2024-01-01T00:00:00Z", None))
            .unwrap();
    assert!(!exact);
    assert!(set.contains(i64::MIN) && set.contains(i64::MAX));
    assert!(!set.contains(at("2023-12-31T23:59:59Z")) && set.contains(at("2024-06-01T00:00:00Z")));
}
