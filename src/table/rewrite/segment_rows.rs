//! Reading live segments back as record batches in the table schema, for rewrites.
//!
//! Does I/O: streams Parquet data files from storage. A column the table gained after a
//! segment was written reads as nulls.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use futures::{stream, Stream, StreamExt, TryStreamExt};

use crate::error::Result;
use crate::formats::parquet::parquet_rows;
use crate::metadata::SegmentMeta;
use crate::storage::TableLocation;

/// The rows of `segments`, one after the other in the order given, in `schema`.
pub(crate) fn read_segments(
    location: TableLocation,
    segments: Vec<Arc<SegmentMeta>>,
    schema: SchemaRef,
) -> impl Stream<Item = Result<RecordBatch>> + Send {
    stream::iter(segments)
        .then(move |segment| {
            let (location, schema) = (location.clone(), Arc::clone(&schema));
            async move { read_segment(&location, &segment, schema).await }
        })
        .try_flatten()
}

/// The rows of one segment in `schema`.
pub(crate) async fn read_segment(
    location: &TableLocation,
    segment: &SegmentMeta,
    schema: SchemaRef,
) -> Result<impl Stream<Item = Result<RecordBatch>> + Send> {
    let reader = location.stored_file(&segment.path, segment.size_bytes);
    let rows = parquet_rows(reader, &location.describe(&segment.path)).await?;
    Ok(rows.map(move |batch| in_schema(&batch?, &schema)))
}

/// `batch` with its columns matched to `schema` by name; absent ones are nulls.
fn in_schema(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => Arc::clone(column),
            None => new_null_array(field.data_type(), batch.num_rows()),
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
