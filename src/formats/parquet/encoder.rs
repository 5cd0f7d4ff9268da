//! Encoding a segment's rows as Parquet with the columns of a row group encoded side by
//! side on the machine's cores: dictionary building and compression dominate an append,
//! and one column does not wait for another.
//!
//! No I/O: the encoded bytes collect in a buffer that the caller drains into its upload.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::arrow::ArrowWriter;
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use crate::environment;

/// Writes one Parquet file, row group by row group, into an in-memory buffer. After an
/// error the file is incomplete, and every later call fails.
pub struct SegmentEncoder {
    file: SerializedFileWriter<SharedBuffer>,
    row_groups: ArrowRowGroupWriterFactory,
    buffer: SharedBuffer,
    schema: SchemaRef,
    row_group_rows: usize,
    /// Sizes of the next row groups, when planned; `row_group_rows` after them.
    planned: VecDeque<usize>,
    open: Option<OpenRowGroup>,
    /// A write failed part way: rows may be missing, so every later call fails too.
    failed: bool,
}

/// One column of a row group after a write: still open, or closed because its group filled.
enum Encoded {
    Open(Box<ArrowColumnWriter>),
    Closed(Box<ArrowColumnChunk>),
}

impl Encoded {
    fn open(self) -> ArrowColumnWriter {
        match self {
            Encoded::Open(writer) => *writer,
            Encoded::Closed(_) => unreachable!("the columns of a group that did not fill stay open"),
        }
    }

    fn closed(self) -> ArrowColumnChunk {
        match self {
            Encoded::Closed(chunk) => *chunk,
            Encoded::Open(_) => unreachable!("the columns of a group that filled are closed"),
        }
    }
}

struct OpenRowGroup {
    /// One writer per Parquet leaf column, in schema order.
    columns: Vec<ArrowColumnWriter>,
    rows: usize,
}

impl SegmentEncoder {
    /// An encoder of `schema` with `properties` (whose row-group row limit it keeps).
    pub fn try_new(schema: SchemaRef, properties: WriterProperties) -> Result<Self> {
        let row_group_rows = properties.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let buffer = SharedBuffer::default();
        // Through `ArrowWriter`, so the file carries the Arrow schema as `ArrowWriter`'s do.
        let writer = ArrowWriter::try_new(buffer.clone(), Arc::clone(&schema), Some(properties))?;
        let (file, row_groups) = writer.into_serialized_writer()?;
        Ok(SegmentEncoder {
            file,
            row_groups,
            buffer,
            schema,
            row_group_rows,
            planned: VecDeque::new(),
            open: None,
            failed: false,
        })
    }

    /// Sets the sizes of the next row groups (before any row is written); rows beyond
    /// them go to row groups of the usual size.
    pub fn plan_row_groups(&mut self, sizes: Vec<usize>) {
        self.planned = sizes.into_iter().filter(|&rows| rows > 0).collect();
    }

    /// Encodes `batch` (in the encoder's schema), closing row groups as they fill. Every
    /// column of every row group the batch reaches is a task of its own, and a column whose
    /// row group fills is closed (its last page and dictionary compressed) in the same task:
    /// more tasks than cores keep both cores busy to the end.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.guarded(|encoder| encoder.encode(batch))
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        // The batch cut where row groups fill: (first row, rows, rows of its group after it).
        let mut parts = Vec::new();
        let (mut offset, mut group_rows) = (0, self.open.as_ref().map_or(0, |open| open.rows));
        while offset < batch.num_rows() {
            let limit = self.planned.get(parts.len()).copied().unwrap_or(self.row_group_rows);
            let take = (limit - group_rows).min(batch.num_rows() - offset);
            parts.push((offset, take, group_rows + take, limit));
            offset += take;
            group_rows = (group_rows + take) % limit;
        }
        let (mut tasks, mut leaf_columns) = (Vec::new(), 0);
        for (index, &(offset, take, rows, limit)) in parts.iter().enumerate() {
            let writers = match self.open.take() {
                Some(open) => open.columns,
                None => self.row_groups.create_column_writers(self.file.flushed_row_groups().len() + index)?,
            };
            leaf_columns = writers.len();
            let part = batch.slice(offset, take);
            let mut leaves = Vec::with_capacity(writers.len());
            for (field, column) in self.schema.fields().iter().zip(part.columns()) {
                leaves.extend(compute_leaves(field, column)?);
            }
            debug_assert_eq!(leaves.len(), writers.len(), "a leaf per column writer");
            tasks.extend(writers.into_iter().zip(leaves).map(|(writer, leaf)| (writer, leaf, rows == limit)));
        }
        let mut encoded: Vec<Option<Encoded>> = tasks.iter().map(|_| None).collect();
        let tasks = encoded.iter_mut().zip(tasks);
        environment::on_cores(tasks, batch.num_rows(), |(slot, (mut writer, leaf, fills))| {
            writer.write(&leaf)?;
            *slot = Some(if fills { Encoded::Closed(Box::new(writer.close()?)) } else { Encoded::Open(Box::new(writer)) });
            Ok::<_, ParquetError>(())
        })?;
        let mut encoded = encoded.into_iter().map(|done| done.expect("every task ran"));
        for &(_, _, rows, limit) in &parts {
            let group = encoded.by_ref().take(leaf_columns);
            if rows == limit {
                self.append_row_group(group.map(Encoded::closed))?;
            } else {
                self.open = Some(OpenRowGroup { columns: group.map(Encoded::open).collect(), rows });
            }
        }
        Ok(())
    }

    /// Runs `step`; once a step has failed, every later one fails without running.
    fn guarded(&mut self, step: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        if self.failed {
            return Err(ParquetError::General("an earlier write to this file failed".into()));
        }
        let result = step(self);
        self.failed = result.is_err();
        result
    }

    /// Bytes written to the buffer so far (taken or not).
    pub fn bytes_written(&self) -> usize {
        self.file.bytes_written()
    }

    /// The estimated encoded size of the open row group.
    pub fn in_progress_size(&self) -> usize {
        self.open.as_ref().map_or(0, |open| open.columns.iter().map(|c| c.get_estimated_total_bytes()).sum())
    }

    /// Takes the bytes encoded since the last call (whole row groups, then the footer).
    pub fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.buffer.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Closes the open row group and writes the footer; [`Self::take_bytes`] then returns
    /// the rest of the file.
    pub fn finish(&mut self) -> Result<()> {
        self.guarded(|encoder| {
            encoder.close_row_group()?;
            encoder.file.finish()?;
            Ok(())
        })
    }

    /// Closes the open row group, its columns side by side.
    fn close_row_group(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else { return Ok(()) };
        let mut closed: Vec<Option<ArrowColumnChunk>> = open.columns.iter().map(|_| None).collect();
        environment::on_cores(closed.iter_mut().zip(open.columns), open.rows, |(slot, column)| {
            *slot = Some(column.close()?);
            Ok::<_, ParquetError>(())
        })?;
        self.append_row_group(closed.into_iter().map(|chunk| chunk.expect("every column closed")))
    }

    /// Writes the closed columns of the next row group to the file.
    fn append_row_group(&mut self, columns: impl Iterator<Item = ArrowColumnChunk>) -> Result<()> {
        self.planned.pop_front();
        let mut row_group = self.file.next_row_group()?;
        for chunk in columns {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.file.flush()?;
        Ok(())
    }
}

/// The encoded bytes, shared by the file writer (which appends) and the encoder (which
/// drains them).
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::WriterProperties;

    use super::SegmentEncoder;

    /// Every row comes back in order, in row groups of the configured size, whether a batch
    /// is encoded on one thread or several.
    #[test]
    fn encoded_files_read_back_row_for_row() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Int64, false),
            Field::new("symbol", DataType::Utf8, true),
            Field::new("close", DataType::Float64, true),
        ]));
        let batch = |start: i64, rows: i64| {
            let ts = Int64Array::from_iter_values(start..start + rows);
            let symbol: StringArray = (start..start + rows).map(|i| (i % 7 != 0).then(|| format!("S{}", i % 13))).collect();
            let close = Float64Array::from_iter_values((start..start + rows).map(|i| i as f64 / 4.0));
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(ts), Arc::new(symbol), Arc::new(close)]).unwrap()
        };
        // 100 rows (one thread), then 30,000 (threads), across row groups of 12,000.
        let inputs = [batch(0, 100), batch(100, 30_000)];
        let properties = WriterProperties::builder().set_max_row_group_row_count(Some(12_000)).build();
        let mut encoder = SegmentEncoder::try_new(Arc::clone(&schema), properties).unwrap();
        let mut file = Vec::new();
        for input in &inputs {
            encoder.write(input).unwrap();
            file.extend(encoder.take_bytes());
        }
        encoder.finish().unwrap();
        file.extend(encoder.take_bytes());
        assert_eq!(encoder.bytes_written(), file.len());

        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).unwrap();
        let sizes: Vec<i64> = reader.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(sizes, [12_000, 12_000, 6_100]);
        let read: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
        let read = arrow::compute::concat_batches(&schema, &read).unwrap();
        let written = arrow::compute::concat_batches(&schema, &inputs).unwrap();
        assert_eq!(read, written);
    }

    #[test]
    fn planned_row_groups_come_first_then_the_usual_size() {
        let schema = Arc::new(Schema::new(vec![Field::new("ts", DataType::Int64, false)]));
        let properties = WriterProperties::builder().set_max_row_group_row_count(Some(12_000)).build();
        let mut encoder = SegmentEncoder::try_new(Arc::clone(&schema), properties.clone()).unwrap();
        encoder.plan_row_groups(vec![5_000, 3_000]);
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from_iter_values(0..30_100))]);
        encoder.write(&batch.unwrap()).unwrap();
        encoder.finish().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(encoder.take_bytes())).unwrap();
        let sizes: Vec<i64> = reader.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(sizes, [5_000, 3_000, 12_000, 10_100]);

        // The same plan reached across two writes: the first group fills in the second.
        let mut encoder = SegmentEncoder::try_new(Arc::clone(&schema), properties).unwrap();
        encoder.plan_row_groups(vec![5_000, 3_000]);
        for range in [0..4_000, 4_000..30_100] {
            let values = Int64Array::from_iter_values(range);
            encoder.write(&RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(values)]).unwrap()).unwrap();
        }
        encoder.finish().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(encoder.take_bytes())).unwrap();
        let sizes: Vec<i64> = reader.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(sizes, [5_000, 3_000, 12_000, 10_100]);
        let read: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
        let values: Vec<i64> = read.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
        assert_eq!(values, (0..30_100).collect::<Vec<i64>>());
    }
}
