//! Appending files. A Parquet file in time order with the table's column types is adopted
//! byte for byte (copied in upload parts); any other Parquet file is
//! re-encoded through the ingest pipeline. CSV and newline-delimited JSON are parsed into
//! the table's schema and streamed through the same pipeline. A replace reads its files
//! the same way.
//!
//! Does I/O: reads local files, uploads adopted ones.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use parquet::arrow::async_reader::AsyncFileReader;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::sink::stage_files;
use super::Staged;
use crate::environment;
use crate::error::{Error, Result};
use crate::formats::parquet::{inspect_parquet, parquet_rows, parquet_rows_decoded, parquet_stats};
use crate::metadata::SegmentId;
use crate::storage::{read_local_file, TableLocation, Upload};
use crate::table::{AppendResult, EntityFilter, ReplaceReport, TimeRange, TimeSeriesTable};

/// Rows per batch read from CSV and JSON files.
const TEXT_BATCH_ROWS: usize = 16 * 1024;
/// Rows the reader looks at to infer the columns of a file that starts a table.
const INFER_ROWS: usize = 1000;

/// The file formats an append accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
    /// Newline-delimited JSON: one object per line.
    Json,
}

impl InputFormat {
    /// The format a file name's extension names: `.parquet`/`.pq`, `.csv`, or
    /// `.ndjson`/`.jsonl`/`.json`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "parquet" | "pq" => Some(InputFormat::Parquet),
            "csv" => Some(InputFormat::Csv),
            "ndjson" | "jsonl" | "json" => Some(InputFormat::Json),
            _ => None,
        }
    }
}

/// Why a Parquet file was re-encoded instead of stored as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reencoded {
    /// Its rows are not in time order.
    NotInTimeOrder,
    /// Some column has an equivalent type that the table stores differently.
    ColumnTypes,
}

impl fmt::Display for Reencoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reencoded::NotInTimeOrder => "its rows are not in time order",
            Reencoded::ColumnTypes => "its column types differ from the table's",
        })
    }
}

/// A Parquet file to append.
enum ParquetInput<'a> {
    File(&'a Path),
    Bytes { bytes: Bytes, name: &'a str },
}

impl ParquetInput<'_> {
    fn name(&self) -> String {
        match self {
            ParquetInput::File(path) => path.display().to_string(),
            ParquetInput::Bytes { name, .. } => name.to_string(),
        }
    }

    async fn reader(&self) -> Result<Box<dyn AsyncFileReader>> {
        Ok(match self {
            ParquetInput::File(path) => Box::new(open_file(path).await?),
            ParquetInput::Bytes { bytes, .. } => Box::new(std::io::Cursor::new(bytes.clone())),
        })
    }

    /// Copies the file to `path` in the table, part by part; returns its size. On error
    /// nothing is left at `path`.
    async fn upload(&self, location: &TableLocation, path: &str, part_bytes: usize) -> Result<u64> {
        let mut upload = location.upload(path, part_bytes);
        let storage_error = |e| Error::storage(location.describe(path), e);
        let copied = match self.copy_into(&mut upload, part_bytes, &location.describe(path)).await {
            Ok(()) => upload.finish().await.map_err(storage_error),
            Err(e) => Err(e),
        };
        if let Err(e) = copied {
            upload.abort().await;
            let _ = location.delete(path).await;
            return Err(e);
        }
        Ok(upload.written())
    }

    async fn copy_into(&self, upload: &mut Upload, part_bytes: usize, target: &str) -> Result<()> {
        let storage_error = |e| Error::storage(target, e);
        match self {
            ParquetInput::Bytes { bytes, .. } => upload.write(bytes).await.map_err(storage_error),
            ParquetInput::File(path) => {
                let mut file = open_file(path).await?;
                let mut chunk = BytesMut::with_capacity(part_bytes);
                loop {
                    chunk.clear();
                    while chunk.len() < part_bytes {
                        let read = file
                            .read_buf(&mut chunk)
                            .await
                            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
                        if read == 0 {
                            break;
                        }
                    }
                    if chunk.is_empty() {
                        return Ok(());
                    }
                    upload.write(&chunk).await.map_err(storage_error)?;
                }
            }
        }
    }

    /// Size and modification time of a local file, to notice it changing under the append.
    async fn fingerprint(&self) -> Result<Option<(u64, Option<std::time::SystemTime>)>> {
        match self {
            ParquetInput::File(path) => {
                let metadata =
                    tokio::fs::metadata(path).await.map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
                Ok(Some((metadata.len(), metadata.modified().ok())))
            }
            ParquetInput::Bytes { .. } => Ok(None),
        }
    }
}

/// The metadata of a local input file; an error when it is missing or not a file.
async fn input_file_metadata(path: &Path) -> Result<std::fs::Metadata> {
    let io_error = |source| Error::Io { path: path.to_path_buf(), source };
    let metadata = tokio::fs::metadata(path).await.map_err(io_error)?;
    if !metadata.is_file() {
        return Err(io_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file")));
    }
    Ok(metadata)
}

async fn open_file(path: &Path) -> Result<tokio::fs::File> {
    input_file_metadata(path).await?;
    tokio::fs::File::open(path).await.map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

impl TimeSeriesTable {
    /// Appends a file, in the format its extension names ([`InputFormat::from_path`]).
    pub async fn append_file(&mut self, path: impl AsRef<Path>) -> Result<AppendResult> {
        let path = path.as_ref();
        match InputFormat::from_path(path) {
            Some(InputFormat::Parquet) => self.append_parquet_file(path).await,
            Some(InputFormat::Csv) => self.append_csv_file(path).await,
            Some(InputFormat::Json) => self.append_json_file(path).await,
            None => Err(Error::invalid_input(format!(
                "cannot tell the format of {} from its name; use .parquet, .csv, or .ndjson/.jsonl/.json",
                path.display()
            ))),
        }
    }

    /// Appends a Parquet file: stored as it is when its rows are in time order and its
    /// columns have the table's types, re-encoded otherwise ([`AppendResult::reencoded`]
    /// says why). A file within a quarter of the memory limit is read once, whole; a larger
    /// one is streamed row group by row group, either way.
    pub async fn append_parquet_file(&mut self, path: impl AsRef<Path>) -> Result<AppendResult> {
        self.append_parquet(ParquetInput::File(path.as_ref())).await
    }

    /// [`Self::append_parquet_file`] for the bytes of a Parquet file; `name` is used in
    /// messages.
    #[tracing::instrument(skip_all, fields(location = %self.location(), file = name))]
    pub async fn append_parquet_bytes(&mut self, bytes: Bytes, name: &str) -> Result<AppendResult> {
        self.append_parquet(ParquetInput::Bytes { bytes, name }).await
    }

    async fn append_parquet(&mut self, input: ParquetInput<'_>) -> Result<AppendResult> {
        self.writable()?;
        let name = input.name();
        // A local file within the share of the memory limit that input of unknown order may
        // take is read once, whole: its footer, statistics and copy or rows come from those
        // bytes, not from four reads of the file.
        let held = self.held_while_unordered();
        let input = match input {
            ParquetInput::File(path) if input_file_metadata(path).await.is_ok_and(|m| m.len() <= held as u64) => {
                ParquetInput::Bytes { bytes: read_local_file(path).await?, name: &name }
            }
            other => other,
        };
        let spec = self.spec().clone();
        let inspected = inspect_parquet(input.reader().await?, &spec, &name).await?;
        let schema = self.schema_for(&inspected.schema, |i| inspected.null_free.get(i).copied().unwrap_or(false))?;
        let same_types =
            schema.fields().iter().zip(inspected.schema.fields()).all(|(t, f)| t.data_type() == f.data_type());
        let before = input.fingerprint().await?;
        let reason = if !same_types {
            Reencoded::ColumnTypes
        } else if let Some(stats) = parquet_stats(input.reader().await?, &spec, &name, true).await? {
            if let Some(counter) = &self.rows_read {
                counter.fetch_add(stats.row_count, std::sync::atomic::Ordering::Relaxed);
            }
            let id = SegmentId::random();
            let path = format!("data/{id}.parquet");
            let size = input.upload(self.location(), &path, self.writer_options().upload_part_bytes).await?;
            // The statistics were read before the copy: the copy must be of the same file.
            if input.fingerprint().await? != before {
                let _ = self.location().delete(&path).await;
                return Err(Error::invalid_input(format!(
                    "{name} changed while it was being appended; nothing was appended"
                )));
            }
            let segment = stage_files(self.location(), id, path, &stats, size).await?;
            let staged = Staged { schema, segments: vec![segment], coverage: Arc::new(stats.coverage) };
            return self.commit_staged(staged, "append", None).await;
        } else {
            Reencoded::NotInTimeOrder
        };
        let rows = self.reencoded_rows(&input, &name).await?;
        let staged = self.stage_stream(rows).await?;
        self.commit_staged(staged, "append", Some(reason)).await
    }

    /// What input of unknown order may hold: files within it are read whole.
    fn held_while_unordered(&self) -> usize {
        self.writer_options().memory_limit / super::UNKNOWN_ORDER_SHARE
    }

    /// The rows of a Parquet file to re-encode. A file in memory small enough to hold decoded
    /// within the share of the memory limit that input of unknown order may take is decoded
    /// on every core ([`parquet_rows_decoded`]); a larger one streams row group by row group.
    async fn reencoded_rows(
        &self,
        input: &ParquetInput<'_>,
        name: &str,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let held = self.held_while_unordered();
        let bytes = match input {
            ParquetInput::Bytes { bytes, .. } => bytes.clone(),
            ParquetInput::File(_) => return Ok(parquet_rows(input.reader().await?, name).await?.boxed()),
        };
        if bytes.len() <= held {
            let (whole, owned_name) = (bytes.clone(), name.to_string());
            if let Some(batches) =
                environment::compute(move || parquet_rows_decoded(whole, &owned_name, held)).await??
            {
                return Ok(stream::iter(batches.into_iter().map(Ok)).boxed());
            }
        }
        // Too large to hold decoded: streamed from the bytes already read.
        Ok(parquet_rows(std::io::Cursor::new(bytes), name).await?.boxed())
    }

    /// Appends a CSV file with a header row. Its columns are matched to the table's by
    /// name and parsed as the table's types (or inferred, for the table's first append);
    /// timestamps without an offset are read in the table's time zone.
    pub async fn append_csv_file(&mut self, path: impl AsRef<Path>) -> Result<AppendResult> {
        self.writable()?;
        let rows = self.text_rows(path.as_ref(), InputFormat::Csv).await?;
        let staged = self.stage_stream(rows).await?;
        self.commit_staged(staged, "append", None).await
    }

    /// Appends a newline-delimited JSON file (one object per line), matched to the
    /// table's columns by name like [`Self::append_csv_file`]; unknown fields are errors.
    pub async fn append_json_file(&mut self, path: impl AsRef<Path>) -> Result<AppendResult> {
        self.writable()?;
        let rows = self.text_rows(path.as_ref(), InputFormat::Json).await?;
        let staged = self.stage_stream(rows).await?;
        self.commit_staged(staged, "append", None).await
    }

    /// Replaces the rows of `range` (for the entities `entities` admits) with the rows of
    /// `files`, read in the order given, in one commit; see [`Self::replace`].
    pub async fn replace_files(
        &mut self,
        range: TimeRange,
        entities: EntityFilter,
        files: &[impl AsRef<Path>],
    ) -> Result<ReplaceReport> {
        let mut inputs = Vec::with_capacity(files.len());
        for file in files {
            inputs.push(self.file_rows(file.as_ref()).await?);
        }
        self.replace(range, entities, stream::iter(inputs).flatten()).await
    }

    /// The rows of a file in the format its extension names, as a stream.
    async fn file_rows(&self, path: &Path) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        match InputFormat::from_path(path) {
            Some(InputFormat::Parquet) => {
                Ok(parquet_rows(open_file(path).await?, &path.display().to_string()).await?.boxed())
            }
            Some(format) => Ok(self.text_rows(path, format).await?.boxed()),
            None => Err(Error::invalid_input(format!(
                "cannot tell the format of {} from its name; use .parquet, .csv, or .ndjson/.jsonl/.json",
                path.display()
            ))),
        }
    }

    /// The rows of a CSV or JSON file as a stream, parsed on a blocking thread.
    async fn text_rows(&self, path: &Path, format: InputFormat) -> Result<impl Stream<Item = Result<RecordBatch>>> {
        open_file(path).await?;
        let path = path.to_path_buf();
        let table = self.schema();
        let time_type = DataType::Timestamp(TimeUnit::Nanosecond, self.spec().timezone.as_deref().map(Arc::from));
        let time_column = self.spec().time_column.clone();
        let evolve = self.writer_options().evolve_schema;
        let (sender, receiver) = mpsc::channel(2);
        let plan = tokio::task::spawn_blocking(move || -> Result<()> {
            let (file_schema, order) = text_schema(&path, format, table.as_ref(), &time_column, &time_type, evolve)?;
            let name = path.display().to_string();
            let read_error = |e: arrow::error::ArrowError| Error::invalid_input(format!("{name}: {e}"));
            let file = std::fs::File::open(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
            let file = std::io::BufReader::with_capacity(1 << 20, file);
            let batches: Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>>> =
                match format {
                    InputFormat::Csv => Box::new(
                        arrow::csv::ReaderBuilder::new(Arc::clone(&file_schema))
                            .with_header(true)
                            .with_batch_size(TEXT_BATCH_ROWS)
                            .build(file)
                            .map_err(read_error)?,
                    ),
                    _ => Box::new(
                        arrow::json::ReaderBuilder::new(Arc::clone(&file_schema))
                            .with_strict_mode(true)
                            .with_batch_size(TEXT_BATCH_ROWS)
                            .build(file)
                            .map_err(read_error)?,
                    ),
                };
            for batch in batches {
                let batch = batch.map_err(read_error).and_then(|b| match &order {
                    Some(order) => b.project(order).map_err(Error::from),
                    None => Ok(b),
                });
                let failed = batch.is_err();
                if sender.blocking_send(batch).is_err() || failed {
                    break;
                }
            }
            Ok(())
        });
        let rows = futures::stream::unfold((receiver, Some(plan)), |(mut receiver, plan)| async move {
            match receiver.recv().await {
                Some(batch) => Some((batch, (receiver, plan))),
                // The reader is done: report how it ended if it failed before any batch.
                None => match plan?.await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some((Err(e), (receiver, None))),
                    Err(e) => Some((Err(Error::Task(e.to_string())), (receiver, None))),
                },
            }
        });
        Ok(rows)
    }
}

/// The schema to parse a text file with, and (CSV) the projection that puts its columns
/// in the table's order. Columns are matched by name; a table without a schema yet takes
/// the inferred one, with the time column read as timestamps. With `evolve`, columns the
/// table lacks follow the table's own, as inferred.
fn text_schema(
    path: &Path,
    format: InputFormat,
    table: Option<&SchemaRef>,
    time_column: &str,
    time_type: &DataType,
    evolve: bool,
) -> Result<(SchemaRef, Option<Vec<usize>>)> {
    let name = path.display().to_string();
    let open = || std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source });
    let infer_error = |e: arrow::error::ArrowError| Error::invalid_input(format!("{name}: {e}"));
    let inferred = match format {
        InputFormat::Csv => {
            arrow::csv::reader::Format::default()
                .with_header(true)
                .infer_schema(open()?, Some(INFER_ROWS))
                .map_err(infer_error)?
                .0
        }
        _ => {
            // A table's schema names every field already; JSON is read by name. Missing
            // values read as nulls, which the schema check then names.
            if let (Some(table), false) = (table, evolve) {
                let fields: Vec<Field> =
                    table.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
                return Ok((Arc::new(Schema::new(fields)), None));
            }
            let inferred = arrow::json::reader::infer_json_schema(std::io::BufReader::new(open()?), Some(INFER_ROWS))
                .map_err(infer_error)?
                .0;
            if let Some(table) = table {
                let mut fields: Vec<Field> =
                    table.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
                let new = inferred.fields().iter().filter(|f| table.field_with_name(f.name()).is_err());
                fields.extend(new.map(|f| f.as_ref().clone().with_nullable(true)));
                return Ok((Arc::new(Schema::new(fields)), None));
            }
            inferred
        }
    };
    let Some(table) = table else {
        let fields: Vec<Field> = inferred
            .fields()
            .iter()
            .map(|f| {
                let field = f.as_ref().clone();
                if f.name() == time_column {
                    field.with_data_type(time_type.clone())
                } else {
                    field
                }
            })
            .collect();
        return Ok((Arc::new(Schema::new(fields)), None));
    };
    let columns = |schema: &Schema| schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ");
    let mut fields = Vec::new();
    let mut new_columns = Vec::new();
    for (i, field) in inferred.fields().iter().enumerate() {
        match table.field_with_name(field.name()) {
            Ok(table_field) => fields.push(table_field.clone().with_nullable(true)),
            Err(_) if evolve => {
                fields.push(field.as_ref().clone().with_nullable(true));
                new_columns.push(i);
            }
            Err(_) => {
                return Err(Error::invalid_input(format!(
                    "{name} has a column '{}' that the table does not have (the table's columns: {}; to add it, append with schema evolution)",
                    field.name(),
                    columns(table)
                )))
            }
        }
    }
    let file_schema = Schema::new(fields);
    let mut order = table
        .fields()
        .iter()
        .map(|f| {
            file_schema.index_of(f.name()).map_err(|_| {
                Error::invalid_input(format!(
                    "{name} has no column '{}' (its columns: {}; the table's: {})",
                    f.name(),
                    columns(&file_schema),
                    columns(table)
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    order.extend(new_columns);
    Ok((Arc::new(file_schema), Some(order)))
}
