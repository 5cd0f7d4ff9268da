//! `GapFillExec`: reads the aggregate's output sorted by series and time, and inserts a
//! row for every bin of the range that a series lacks (only scheduled bins, when asked),
//! filling its aggregates by their strategy. The input is collected (an aggregate has
//! already materialised it); the output streams one series at a time.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::kernels::partition::partition;
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast, concat_batches, take, SortOptions};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, LexRequirement, OrderingRequirements, PhysicalExpr, PhysicalSortExpr,
    PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};

use super::plan::{Fill, GapFillParams};
use crate::metadata::time::nanos_per_unit;

/// See the module docs.
#[derive(Debug)]
pub struct GapFillExec {
    input: Arc<dyn ExecutionPlan>,
    params: Arc<GapFillParams>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl GapFillExec {
    pub(crate) fn try_new(input: Arc<dyn ExecutionPlan>, params: GapFillParams, schema: SchemaRef) -> Result<Self> {
        let ordering = LexOrdering::new(
            sort_keys(&params, &schema).into_iter().map(|(column, options)| PhysicalSortExpr::new(column, options)),
        );
        let mut equivalences = EquivalenceProperties::new(Arc::clone(&schema));
        if let Some(ordering) = ordering {
            equivalences.add_ordering(ordering);
        }
        let properties = PlanProperties::new(
            equivalences,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(GapFillExec { input, params: Arc::new(params), schema, properties: Arc::new(properties) })
    }

    /// What the fill was planned with (to send the node to another process).
    #[cfg(feature = "ballista")]
    pub(crate) fn params(&self) -> &GapFillParams {
        &self.params
    }
}

/// Series keys ascending, then time ascending, nulls last (as `ORDER BY` sorts by default,
/// so a query's own sort can serve): the order the fill walks.
fn sort_keys(params: &GapFillParams, schema: &SchemaRef) -> Vec<(Arc<dyn PhysicalExpr>, SortOptions)> {
    let column = |i: usize| -> Arc<dyn PhysicalExpr> { Arc::new(Column::new(schema.field(i).name(), i)) };
    let mut keys: Vec<(Arc<dyn PhysicalExpr>, SortOptions)> =
        params.series.iter().map(|&i| (column(i), SortOptions { descending: false, nulls_first: false })).collect();
    keys.push((column(params.time), SortOptions { descending: false, nulls_first: false }));
    keys
}

impl DisplayAs for GapFillExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let p = &self.params;
        let name = |i: usize| self.schema.field(i).name().clone();
        let series: Vec<String> = p.series.iter().map(|&i| name(i)).collect();
        write!(
            f,
            "GapFillExec: time={}, series=[{}], stride={}ns, bins={}",
            name(p.time),
            series.join(", "),
            p.stride,
            if p.first_bin > p.last_bin {
                0
            } else {
                (i128::from(p.last_bin) - i128::from(p.first_bin)) / i128::from(p.stride) + 1
            }
        )?;
        if p.sessions.is_some() {
            write!(f, ", scheduled bins only")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for GapFillExec {
    fn name(&self) -> &str {
        "GapFillExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let input_schema = self.input.schema();
        let requirement = LexRequirement::new(
            sort_keys(&self.params, &input_schema)
                .into_iter()
                .map(|(column, options)| PhysicalSortRequirement::new(column, Some(options))),
        );
        vec![requirement.map(OrderingRequirements::new)]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("GapFillExec takes one input");
        }
        Ok(Arc::new(GapFillExec::try_new(
            children.swap_remove(0),
            self.params.as_ref().clone(),
            Arc::clone(&self.schema),
        )?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("GapFillExec has one partition, not {partition}");
        }
        let input = self.input.execute(0, context)?;
        let input_schema = self.input.schema();
        let (params, schema) = (Arc::clone(&self.params), Arc::clone(&self.schema));
        let output_schema = Arc::clone(&schema);
        let stream = futures::stream::once(async move {
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            let all = concat_batches(&input_schema, &batches)?;
            let series = series_ranges(&all, &params.series)?;
            let fill = move |rows: Range<usize>| fill_series(&all, rows, &params, &schema);
            Ok::<_, DataFusionError>(futures::stream::iter(series).map(fill))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(output_schema, stream)))
    }
}

/// The row ranges of each series in `batch`, which is sorted by the series keys.
pub(super) fn series_ranges(batch: &RecordBatch, series: &[usize]) -> Result<Vec<Range<usize>>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    if series.is_empty() {
        return Ok(std::iter::once(0..batch.num_rows()).collect());
    }
    let keys: Vec<ArrayRef> = series.iter().map(|&i| Arc::clone(batch.column(i))).collect();
    Ok(partition(&keys)?.ranges())
}

/// One output row: an input row, or an inserted bin (its start, in the column's unit).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Row(usize),
    Gap(i64),
}

/// The rows of one series (`rows` of `batch`, sorted by time with nulls last) with the
/// missing bins inserted and filled.
pub(super) fn fill_series(
    batch: &RecordBatch,
    rows: Range<usize>,
    params: &GapFillParams,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let time_column = batch.column(params.time);
    let DataType::Timestamp(unit, _) = time_column.data_type() else {
        return internal_err!("the gap-fill time column is {}", time_column.data_type());
    };
    let unit = nanos_per_unit(*unit);
    let times = cast(time_column, &DataType::Int64)?;
    let times = times.as_any().downcast_ref::<Int64Array>().expect("cast to Int64");
    let slots = slots(times, rows.clone(), params, unit);
    let series_row = rows.start as u32;

    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, fill) in params.fill.iter().copied().enumerate().chain(params.filled.iter().copied()) {
        let column = batch.column(i);
        let filled: ArrayRef = match fill {
            Fill::Key if i == params.time => {
                let values: Int64Array = slots
                    .iter()
                    .map(|slot| match *slot {
                        Slot::Row(r) => times.is_valid(r).then(|| times.value(r)),
                        Slot::Gap(bin) => Some(bin),
                    })
                    .collect();
                cast(&values, column.data_type())?
            }
            Fill::Key => take(column, &UInt32Array::from(vec![series_row; slots.len()]), None)?,
            Fill::Null => take(column, &own_rows(&slots), None)?,
            Fill::Locf => take(column, &last_values(&slots, column), None)?,
            Fill::Interpolate => interpolate(&slots, column, times)?,
        };
        columns.push(filled);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// The output rows of a series: its rows and the missing bins of the range in time order
/// (only bins that meet a session, when there are sessions), then its null-time rows.
fn slots(times: &Int64Array, rows: Range<usize>, params: &GapFillParams, unit: i64) -> Vec<Slot> {
    let mut slots = Vec::new();
    let mut row = rows.start;
    let timed = rows.start + (rows.start..rows.end).take_while(|&r| times.is_valid(r)).count();
    let (stride, last) = (params.stride / unit, params.last_bin.div_euclid(unit));
    let mut bin = params.first_bin.div_euclid(unit);
    let mut session = 0;
    while params.first_bin <= params.last_bin && bin <= last {
        while row < timed && times.value(row) < bin {
            slots.push(Slot::Row(row));
            row += 1;
        }
        if row < timed && times.value(row) == bin {
            slots.push(Slot::Row(row));
            row += 1;
        } else if scheduled(params, &mut session, bin * unit) {
            slots.push(Slot::Gap(bin));
        }
        match bin.checked_add(stride) {
            Some(next) => bin = next,
            None => break,
        }
    }
    slots.extend((row..rows.end).map(Slot::Row));
    slots
}

/// Whether the bin starting at `start` (ns) meets a session; `session` is the first
/// session not yet passed, so the search moves forward with the bins.
fn scheduled(params: &GapFillParams, session: &mut usize, start: i64) -> bool {
    let Some(sessions) = &params.sessions else { return true };
    while sessions.get(*session).is_some_and(|&(_, end)| end <= start) {
        *session += 1;
    }
    sessions.get(*session).is_some_and(|&(begin, _)| begin < start.saturating_add(params.stride))
}

/// Each slot's own row; null for inserted bins.
fn own_rows(slots: &[Slot]) -> UInt32Array {
    slots
        .iter()
        .map(|slot| match *slot {
            Slot::Row(r) => Some(r as u32),
            Slot::Gap(_) => None,
        })
        .collect()
}

/// Each slot's own row when its value is not null, else the last such row before it.
fn last_values(slots: &[Slot], column: &ArrayRef) -> UInt32Array {
    let mut last = None;
    slots
        .iter()
        .map(|slot| {
            if let Slot::Row(r) = *slot {
                if column.is_valid(r) {
                    last = Some(r as u32);
                }
            }
            last
        })
        .collect()
}

/// Values at non-null rows kept; every other slot linear in time between the non-null
/// values on either side (computed in f64, then cast back, so integers truncate toward
/// zero), null where one side has none.
fn interpolate(slots: &[Slot], column: &ArrayRef, times: &Int64Array) -> Result<ArrayRef> {
    let values = cast(column, &DataType::Float64)?;
    let values = values.as_any().downcast_ref::<Float64Array>().expect("cast to Float64");
    let time_of = |slot: Slot| match slot {
        Slot::Row(r) => times.is_valid(r).then(|| times.value(r)),
        Slot::Gap(bin) => Some(bin),
    };
    // Slots holding a known point: a row with a time and a value.
    let anchors: Vec<(usize, i64, f64)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, &slot)| match slot {
            Slot::Row(r) if values.is_valid(r) => time_of(slot).map(|t| (i, t, values.value(r))),
            _ => None,
        })
        .collect();
    let mut next = 0;
    let mut computed = Vec::with_capacity(slots.len());
    let mut is_anchor = Vec::with_capacity(slots.len());
    for (i, &slot) in slots.iter().enumerate() {
        while next < anchors.len() && anchors[next].0 < i {
            next += 1;
        }
        let here = anchors.get(next).is_some_and(|a| a.0 == i);
        is_anchor.push(here);
        let value = match (here, time_of(slot), next.checked_sub(1).and_then(|p| anchors.get(p)), anchors.get(next)) {
            (true, ..) => None,
            (false, Some(t), Some(&(_, t0, v0)), Some(&(_, t1, v1))) if t1 > t0 => {
                Some(v0 + (v1 - v0) * ((t - t0) as f64 / (t1 - t0) as f64))
            }
            _ => None,
        };
        computed.push(value);
    }
    let kept = take(column, &own_rows(slots), None)?;
    let computed = cast(&Float64Array::from(computed), column.data_type())?;
    Ok(zip(&BooleanArray::from(is_anchor), &kept, &computed)?)
}
