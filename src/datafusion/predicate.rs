//! Turning SQL filters into pruning facts: the set of time intervals a matching row's
//! timestamp must fall in, and per entity column the values it must take.
//!
//! A comparison may also wrap the time column in a monotonic function (`CAST(ts AS DATE)`,
//! `date_trunc`, `date_bin`, `to_date`); [`super::preimage`] maps it back to time.
//!
//! Pure; no I/O. The analysis is conservative: anything it does not understand matches
//! everything, so pruning can never drop a matching row. `NOT` is applied only to
//! sub-expressions whose interval set is exact.

use std::collections::{BTreeSet, HashMap};

use arrow::datatypes::Field;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

use super::preimage::{is_monotonic_of_time, preimage};
use super::time_literal::scalar_nanos;
use crate::metadata::{EntityValue, TimeSet};

/// A superset of the timestamps a filter admits; `exact` when it is exactly that set;
/// `derived` when some of it came through a function of the time column (so the plain
/// range is news to the Parquet reader).
#[derive(Debug, Clone)]
struct Analysis {
    set: TimeSet,
    exact: bool,
    derived: bool,
}

impl Analysis {
    fn unknown() -> Self {
        Analysis { set: TimeSet::all(), exact: false, derived: false }
    }

    fn exact(set: TimeSet) -> Self {
        Analysis { set, exact: true, derived: false }
    }

    fn combine(l: Analysis, r: Analysis, set: TimeSet) -> Self {
        Analysis { set, exact: l.exact && r.exact, derived: l.derived || r.derived }
    }
}

/// The time intervals admitted by all `filters` together (their conjunction).
pub fn time_set(filters: &[Expr], time: &Field) -> TimeSet {
    time_constraint(filters, time).0
}

/// [`time_set`], and whether any of it was derived through a function of the time column.
pub fn time_constraint(filters: &[Expr], time: &Field) -> (TimeSet, bool) {
    filters.iter().fold((TimeSet::all(), false), |(set, derived), f| {
        let a = analyze(f, time);
        (set.intersect(&a.set), derived || (a.derived && !a.set.is_all()))
    })
}

/// The exact times `expr` admits when it compares a function of the time column with
/// constants (and nothing else), so the plain range can stand in for it.
pub fn exact_through_functions(expr: &Expr, time: &Field) -> Option<TimeSet> {
    let a = analyze(expr, time);
    (a.exact && a.derived).then_some(a.set)
}

fn analyze(expr: &Expr, time: &Field) -> Analysis {
    let time_column = time.name().as_str();
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            let (l, r) = (analyze(left, time), analyze(right, time));
            let set = l.set.intersect(&r.set);
            Analysis::combine(l, r, set)
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let (l, r) = (analyze(left, time), analyze(right, time));
            let set = l.set.union(&r.set);
            Analysis::combine(l, r, set)
        }
        Expr::Not(inner) => {
            let inner = analyze(inner, time);
            if inner.exact {
                Analysis { set: inner.set.complement(), ..inner }
            } else {
                Analysis::unknown()
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if is_time_column(left, time_column) {
                literal_nanos(right).map_or_else(Analysis::unknown, |v| compare(*op, v))
            } else if is_time_column(right, time_column) {
                match (literal_nanos(left), op.swap()) {
                    (Some(v), Some(op)) => compare(op, v),
                    _ => Analysis::unknown(),
                }
            } else if is_monotonic_of_time(left, time) {
                literal(right).map_or_else(Analysis::unknown, |v| via_function(left, time, *op, &v))
            } else if is_monotonic_of_time(right, time) {
                match (literal(left), op.swap()) {
                    (Some(v), Some(op)) => via_function(right, time, op, &v),
                    _ => Analysis::unknown(),
                }
            } else {
                Analysis::unknown()
            }
        }
        Expr::Between(Between { expr, negated, low, high }) if is_time_column(expr, time_column) => {
            match (literal_nanos(low), literal_nanos(high)) {
                (Some(lo), Some(hi)) => {
                    let set = TimeSet::closed(lo, hi);
                    Analysis::exact(if *negated { set.complement() } else { set })
                }
                _ => Analysis::unknown(),
            }
        }
        Expr::InList(list) if is_time_column(&list.expr, time_column) => {
            let points: Option<Vec<i64>> = list.list.iter().map(literal_nanos).collect();
            match points {
                Some(points) => {
                    let set = points.iter().fold(TimeSet::empty(), |acc, &p| acc.union(&point(p)));
                    Analysis::exact(if list.negated { set.complement() } else { set })
                }
                None => Analysis::unknown(),
            }
        }
        Expr::Between(Between { expr, negated, low, high }) if is_monotonic_of_time(expr, time) => {
            match (literal(low), literal(high)) {
                (Some(lo), Some(hi)) if *negated => {
                    let (l, r) =
                        (via_function(expr, time, Operator::Lt, &lo), via_function(expr, time, Operator::Gt, &hi));
                    let set = l.set.union(&r.set);
                    Analysis::combine(l, r, set)
                }
                (Some(lo), Some(hi)) => {
                    let (l, r) =
                        (via_function(expr, time, Operator::GtEq, &lo), via_function(expr, time, Operator::LtEq, &hi));
                    let set = l.set.intersect(&r.set);
                    Analysis::combine(l, r, set)
                }
                _ => Analysis::unknown(),
            }
        }
        Expr::InList(list) if !list.negated && is_monotonic_of_time(&list.expr, time) => {
            let mut all = Analysis { set: TimeSet::empty(), exact: true, derived: true };
            for item in &list.list {
                let Some(value) = literal(item) else { return Analysis::unknown() };
                let one = via_function(&list.expr, time, Operator::Eq, &value);
                let set = all.set.union(&one.set);
                all = Analysis::combine(all, one, set);
            }
            all
        }
        _ => Analysis::unknown(),
    }
}

/// `function op value`, where `function` is a monotonic function of the time column.
fn via_function(function: &Expr, time: &Field, op: Operator, value: &ScalarValue) -> Analysis {
    match preimage(function, time, op, value) {
        Some((set, exact)) => Analysis { set, exact, derived: true },
        None => Analysis::unknown(),
    }
}

fn point(v: i64) -> TimeSet {
    TimeSet::closed(v, v)
}

fn compare(op: Operator, v: i64) -> Analysis {
    let set = match op {
        Operator::Eq => point(v),
        Operator::NotEq => point(v).complement(),
        Operator::Lt => v.checked_sub(1).map_or_else(TimeSet::empty, |hi| TimeSet::closed(i64::MIN, hi)),
        Operator::LtEq => TimeSet::closed(i64::MIN, v),
        Operator::Gt => v.checked_add(1).map_or_else(TimeSet::empty, |lo| TimeSet::closed(lo, i64::MAX)),
        Operator::GtEq => TimeSet::closed(v, i64::MAX),
        _ => return Analysis::unknown(),
    };
    Analysis::exact(set)
}

/// The time column itself, or a cast of it to a timestamp at least as fine (which keeps
/// every value unchanged).
fn is_time_column(expr: &Expr, time_column: &str) -> bool {
    match expr {
        Expr::Column(c) => c.name == time_column,
        Expr::Cast(cast) => preserves_time(cast.field.data_type()) && is_time_column(&cast.expr, time_column),
        Expr::TryCast(cast) => preserves_time(cast.field.data_type()) && is_time_column(&cast.expr, time_column),
        _ => false,
    }
}

fn preserves_time(target: &datafusion::arrow::datatypes::DataType) -> bool {
    // Only nanoseconds can hold every value of every unit without truncation.
    matches!(
        target,
        datafusion::arrow::datatypes::DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, _)
    )
}

/// A literal (possibly under casts) as nanoseconds since the epoch.
fn literal_nanos(expr: &Expr) -> Option<i64> {
    let value = literal(expr)?;
    scalar_nanos(&value)
}

/// A constant (a literal, possibly under casts, folded as DataFusion would).
pub(crate) fn literal(expr: &Expr) -> Option<ScalarValue> {
    match expr {
        Expr::Literal(value, _) => Some(value.clone()),
        Expr::Cast(cast) => literal(&cast.expr)?.cast_to(cast.field.data_type()).ok(),
        Expr::TryCast(cast) => literal(&cast.expr)?.cast_to(cast.field.data_type()).ok(),
        _ => None,
    }
}

/// Whether [`time_set`] and [`entity_constraints`] together say exactly which rows `filters`
/// admit: every conjunct is an exact time comparison or an entity `=` / `IN` of literals.
/// Then a row matches iff its time is in the set and its entity meets the constraints.
pub fn fully_captured(filters: &[Expr], time: &Field, entity_columns: &[String]) -> bool {
    let mut conjuncts = Vec::new();
    for filter in filters {
        split_and(filter, &mut conjuncts);
    }
    conjuncts.into_iter().all(|expr| {
        analyze(expr, time).exact || entity_values(expr).is_some_and(|(column, _)| entity_columns.contains(&column))
    })
}

/// Per entity column (by position in the spec), the values a matching row must take, from
/// top-level `col = literal` and `col IN (literals)` conjuncts.
pub fn entity_constraints(filters: &[Expr], entity_columns: &[String]) -> HashMap<usize, BTreeSet<EntityValue>> {
    let mut constraints: HashMap<usize, BTreeSet<EntityValue>> = HashMap::new();
    let mut conjuncts = Vec::new();
    for filter in filters {
        split_and(filter, &mut conjuncts);
    }
    for expr in conjuncts {
        let Some((column, values)) = entity_values(expr) else { continue };
        let Some(index) = entity_columns.iter().position(|c| *c == column) else { continue };
        constraints.entry(index).and_modify(|set| set.retain(|v| values.contains(v))).or_insert(values);
    }
    constraints
}

fn split_and<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            split_and(left, out);
            split_and(right, out);
        }
        other => out.push(other),
    }
}

fn entity_values(expr: &Expr) -> Option<(String, BTreeSet<EntityValue>)> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), other) | (other, Expr::Column(c)) => {
                Some((c.name.clone(), BTreeSet::from([scalar_entity(&literal(other)?)?])))
            }
            _ => None,
        },
        // DataFusion's simplifier rewrites short `IN` lists as `col = a OR col = b`.
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let (column, mut values) = entity_values(left)?;
            let (other, more) = entity_values(right)?;
            if column != other {
                return None;
            }
            values.extend(more);
            Some((column, values))
        }
        Expr::InList(list) if !list.negated => match list.expr.as_ref() {
            Expr::Column(c) => {
                let values: Option<BTreeSet<EntityValue>> =
                    list.list.iter().map(|e| scalar_entity(&literal(e)?)).collect();
                Some((c.name.clone(), values?))
            }
            _ => None,
        },
        _ => None,
    }
}

/// An entity-typed scalar as an [`EntityValue`].
pub fn scalar_entity(value: &ScalarValue) -> Option<EntityValue> {
    Some(match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            EntityValue::Str(s.clone())
        }
        ScalarValue::Int8(Some(v)) => EntityValue::Int(*v as i64),
        ScalarValue::Int16(Some(v)) => EntityValue::Int(*v as i64),
        ScalarValue::Int32(Some(v)) => EntityValue::Int(*v as i64),
        ScalarValue::Int64(Some(v)) => EntityValue::Int(*v),
        ScalarValue::UInt8(Some(v)) => EntityValue::Int(*v as i64),
        ScalarValue::UInt16(Some(v)) => EntityValue::Int(*v as i64),
        ScalarValue::UInt32(Some(v)) => EntityValue::Int(*v as i64),
        ScalarValue::UInt64(Some(v)) => EntityValue::from_u64(*v),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{col, lit};

    use super::*;

    fn time() -> Field {
        Field::new("ts", arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None), false)
    }

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(Some(v), None))
    }

    #[test]
    fn comparisons_and_boolean_structure() {
        let e = col("ts").gt_eq(ts(10)).and(col("ts").lt(ts(20)));
        assert_eq!(time_set(&[e], &time()), TimeSet::range(10, 20));
        let e = col("ts").lt(ts(5)).or(col("ts").gt(ts(30)));
        assert_eq!(time_set(std::slice::from_ref(&e), &time()).intervals(), &[(i64::MIN, 4), (31, i64::MAX)]);
        assert_eq!(time_set(&[Expr::Not(Box::new(e))], &time()), TimeSet::range(5, 31));
        let between = col("ts").between(ts(1), ts(3));
        assert_eq!(time_set(&[between], &time()), TimeSet::range(1, 4));
        let list = col("ts").in_list(vec![ts(7), ts(9)], false);
        assert_eq!(time_set(&[list], &time()).intervals(), &[(7, 7), (9, 9)]);
        let flipped = ts(10).lt(col("ts"));
        assert_eq!(time_set(&[flipped], &time()), TimeSet::closed(11, i64::MAX));
    }

    #[test]
    fn both_ends_of_the_representable_range() {
        assert_eq!(time_set(&[col("ts").gt_eq(ts(i64::MAX))], &time()), TimeSet::closed(i64::MAX, i64::MAX));
        assert_eq!(time_set(&[col("ts").eq(ts(i64::MAX))], &time()), TimeSet::closed(i64::MAX, i64::MAX));
        assert!(time_set(&[col("ts").gt(ts(i64::MAX))], &time()).is_empty());
        assert_eq!(time_set(&[col("ts").lt_eq(ts(i64::MIN))], &time()), TimeSet::closed(i64::MIN, i64::MIN));
        assert!(time_set(&[col("ts").lt(ts(i64::MIN))], &time()).is_empty());
        let not_max = Expr::Not(Box::new(col("ts").eq(ts(i64::MAX))));
        assert_eq!(time_set(&[not_max], &time()), TimeSet::closed(i64::MIN, i64::MAX - 1));
    }

    #[test]
    fn unknown_parts_never_narrow_wrongly() {
        let other = col("px").gt(lit(3.0));
        assert!(time_set(std::slice::from_ref(&other), &time()).is_all());
        // NOT over something inexact must not complement it.
        let mixed = col("ts").lt(ts(5)).and(other.clone());
        assert!(time_set(&[Expr::Not(Box::new(mixed))], &time()).is_all());
        // OR with an unknown side admits everything.
        assert!(time_set(&[col("ts").lt(ts(5)).or(other)], &time()).is_all());
    }

    #[test]
    fn literals_of_every_unit_and_strings() {
        let s = lit(ScalarValue::TimestampSecond(Some(2), Some("UTC".into())));
        assert_eq!(time_set(&[col("ts").eq(s)], &time()), TimeSet::range(2_000_000_000, 2_000_000_001));
        let text = lit("1970-01-01T00:00:01Z");
        assert_eq!(time_set(&[col("ts").gt_eq(text)], &time()), TimeSet::closed(1_000_000_000, i64::MAX));
    }

    #[test]
    fn entity_constraints_from_conjuncts() {
        let f = col("symbol").eq(lit("A")).and(col("ts").gt(ts(1)));
        let g = col("symbol").in_list(vec![lit("A"), lit("B")], false);
        let c = entity_constraints(&[f, g], &["symbol".to_string()]);
        assert_eq!(c[&0], BTreeSet::from([EntityValue::Str("A".into())]));
        let either =
            entity_constraints(&[col("symbol").eq(lit("A")).or(col("symbol").eq(lit("B")))], &["symbol".into()]);
        assert_eq!(either[&0], BTreeSet::from([EntityValue::Str("A".into()), EntityValue::Str("B".into())]));
        let mixed = col("symbol").eq(lit("A")).or(col("other").eq(lit("B")));
        assert!(entity_constraints(&[mixed], &["symbol".into()]).is_empty());
        let unknown = col("symbol").eq(lit("A")).or(col("px").gt(lit(1.0)));
        assert!(entity_constraints(&[unknown], &["symbol".into()]).is_empty());
    }
}
