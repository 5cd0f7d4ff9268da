//! Inspecting an existing Parquet file: its schema from the footer, the statistics and
//! coverage of its rows (only the time and entity columns are decoded), and its rows.
//!
//! Reads through parquet's async file reader (a local file, bytes in memory or an object),
//! streaming row group by row group, so memory does not grow with the file; a small file
//! already in memory is decoded a column of a row group per task, on every core, instead.

use arrow::array::{new_empty_array, Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::concat;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use super::stats::{SegmentStats, StatsCollector};
use crate::environment;
use crate::error::{Error, Result};
use crate::metadata::schema::storage_schema;
use crate::metadata::TimeIndexSpec;

/// What the footer of a Parquet file says.
#[derive(Debug)]
pub struct InspectedFile {
    /// The file's Arrow schema, already checked against the table's time index.
    pub schema: SchemaRef,
    /// Per column, whether the file proves the column holds no nulls.
    pub null_free: Vec<bool>,
}

/// Rows per batch when a Parquet file's rows are read back.
const BATCH_ROWS: usize = 8192;

/// Every row of a Parquet file, batch by batch, row group by row group. `name` is used in
/// messages.
pub async fn parquet_rows<R: AsyncFileReader + Unpin + Send + 'static>(
    reader: R,
    name: &str,
) -> Result<impl Stream<Item = Result<RecordBatch>> + Send> {
    let name = name.to_string();
    let parquet_error = move |source| Error::Parquet { path: name.clone(), source };
    Ok(ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(parquet_error.clone())?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(parquet_error.clone())?
        .map_err(parquet_error))
}

/// Every row of a Parquet file held in memory, in file order, a batch per row group, each
/// column of each row group decoded as a task of its own on the machine's cores: blocking,
/// for a thread that may block. `None` when the file decodes to more than
/// `max_decoded_bytes` (by its footer's uncompressed sizes), for the caller to stream it
/// instead. `name` is used in messages.
pub fn parquet_rows_decoded(bytes: Bytes, name: &str, max_decoded_bytes: usize) -> Result<Option<Vec<RecordBatch>>> {
    let metadata = ArrowReaderMetadata::load(&bytes, Default::default()).map_err(parquet_error(name))?;
    let groups = metadata.metadata().row_groups();
    let decoded_bytes: i64 = groups.iter().map(|group| group.total_byte_size()).sum();
    if usize::try_from(decoded_bytes).map_or(true, |size| size > max_decoded_bytes) {
        return Ok(None);
    }
    let group_rows: Vec<usize> = groups.iter().map(|group| usize::try_from(group.num_rows()).unwrap_or(0)).collect();
    let schema = metadata.schema().clone();
    let columns = schema.fields().len();
    let mut decoded: Vec<Option<ArrayRef>> = (0..groups.len() * columns).map(|_| None).collect();
    let tasks = (0..groups.len()).flat_map(|group| (0..columns).map(move |column| (group, column)));
    environment::on_cores(decoded.iter_mut().zip(tasks), group_rows.iter().sum(), |(slot, (group, column))| {
        let projection = ProjectionMask::roots(metadata.parquet_schema(), [column]);
        let batches = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), metadata.clone())
            .with_row_groups(vec![group])
            .with_projection(projection)
            .with_batch_size(group_rows[group].max(1))
            .build()
            .map_err(parquet_error(name))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|source| Error::Parquet { path: name.to_string(), source: source.into() })?;
        let arrays: Vec<&dyn Array> = batches.iter().map(|batch| batch.column(0).as_ref()).collect();
        *slot = Some(match arrays.as_slice() {
            [] => new_empty_array(schema.field(column).data_type()),
            [_] => batches[0].column(0).clone(),
            _ => concat(&arrays)?,
        });
        Ok::<_, Error>(())
    })?;
    let mut decoded = decoded.into_iter();
    let mut batches = Vec::with_capacity(groups.len());
    for rows in group_rows {
        let arrays = decoded.by_ref().take(columns).map(|array| array.expect("every column decoded")).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        batches.push(RecordBatch::try_new_with_options(schema.clone(), arrays, &options)?);
    }
    Ok(Some(batches))
}

/// Reads the footer of a Parquet file and checks its schema, in the types it would be
/// stored as (string views and dictionaries as plain strings), against `spec`. `name` is
/// used in messages.
pub async fn inspect_parquet<R: AsyncFileReader + 'static>(
    reader: R,
    spec: &TimeIndexSpec,
    name: &str,
) -> Result<InspectedFile> {
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(parquet_error(name))?;
    let schema = builder.schema().clone();
    spec.validate_schema(&storage_schema(&schema))?;
    let null_free = null_free_columns(builder.metadata(), schema.fields().len());
    Ok(InspectedFile { schema, null_free })
}

/// The statistics and coverage of a Parquet file's rows. With `sorted_only`, gives up
/// (returns `None`) as soon as the rows turn out not to be in time order: first by the
/// row groups' own statistics, which costs no data read, then while decoding.
pub async fn parquet_stats<R: AsyncFileReader + Unpin + Send + 'static>(
    reader: R,
    spec: &TimeIndexSpec,
    name: &str,
    sorted_only: bool,
) -> Result<Option<SegmentStats>> {
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(parquet_error(name))?;
    let schema = builder.schema().clone();
    spec.validate_schema(&schema)?;
    let time_index = schema.index_of(&spec.time_column).map_err(|e| Error::invalid_input(e.to_string()))?;
    if sorted_only && row_groups_out_of_order(builder.metadata(), time_index, schema.fields().len()) {
        return Ok(None);
    }
    let mut keys = vec![spec.time_column.as_str()];
    keys.extend(spec.entity_columns.iter().map(String::as_str));
    let indices: Vec<usize> = keys.iter().filter_map(|k| schema.index_of(k).ok()).collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let mut stream =
        builder.with_projection(mask).with_batch_size(64 * 1024).build().map_err(parquet_error(name))?;
    let mut collector = StatsCollector::try_new(spec, stream.schema())?;
    while let Some(batch) = stream.try_next().await.map_err(parquet_error(name))? {
        collector.observe(&batch)?;
        if sorted_only && !collector.sorted() {
            return Ok(None);
        }
    }
    let stats = collector.finish();
    if stats.row_count == 0 {
        return Err(Error::invalid_input(format!("{name} has no rows; nothing to append")));
    }
    Ok(Some(stats))
}

fn parquet_error(name: &str) -> impl Fn(parquet::errors::ParquetError) -> Error + '_ {
    move |source| Error::Parquet { path: name.to_string(), source }
}

/// Whether some row group starts before the previous one ends, by the time column's
/// statistics (flat schemas only; anything unclear counts as "in order", and the rows
/// decide).
fn row_groups_out_of_order(metadata: &ParquetMetaData, time_index: usize, columns: usize) -> bool {
    if metadata.file_metadata().schema_descr().num_columns() != columns {
        return false;
    }
    let mut previous_max = None;
    for row_group in metadata.row_groups() {
        let Some(Statistics::Int64(stats)) = row_group.column(time_index).statistics() else { return false };
        let (Some(&min), Some(&max)) = (stats.min_opt(), stats.max_opt()) else { return false };
        if previous_max.is_some_and(|previous| min < previous) {
            return true;
        }
        previous_max = Some(max);
    }
    false
}

/// For flat schemas each Arrow column is one Parquet leaf; a column is provably null-free
/// when every row group's statistics say zero nulls.
fn null_free_columns(metadata: &ParquetMetaData, columns: usize) -> Vec<bool> {
    let leaves = metadata.file_metadata().schema_descr().num_columns();
    (0..columns)
        .map(|c| {
            leaves == columns
                && metadata
                    .row_groups()
                    .iter()
                    .all(|rg| rg.column(c).statistics().and_then(|s| s.null_count_opt()) == Some(0))
        })
        .collect()
}
