//! The codecs that carry our plan nodes between the client, the scheduler and the
//! executors of a Ballista cluster.
//!
//! Our nodes travel as `tsq1` followed by JSON (see [`Wire`]); anything else is handed to
//! Ballista's own codecs, which stay in the chain for their shuffle and cache nodes.
//!
//! - A table travels as the URL and store options that open it in any process, and the
//!   version the client saw. A live table is opened once per scheduler process and then
//!   catches up with the log at each statement, as a local session does; a past version
//!   (`snapshot()`) is opened at exactly that version.
//! - A table function (`coverage`, `gaps`, ...) travels as its kind, its checked arguments
//!   and its table. The scheduler computes the answer when it plans the statement, at the
//!   version the statement's scans read, and ships it to the executor as data (a memory
//!   scan): the answer is small, and only the scheduler needs the log.
//! - Gap filling travels as its parameters, logical and physical.
//! - A memory table (`CREATE TABLE t AS VALUES ...`, Ballista sends none) travels as its
//!   batches, in Arrow IPC: such tables are small lookups joined with ours.
//!
//! Store options may hold credentials: they are in the plan bytes the scheduler gets (use
//! TLS between processes outside one trusted network) and are never printed by these
//! types. Executors build stores with their own options (see [`super::stores`]).
//! Decoding a table does I/O (it opens the table on the scheduler).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use prost::Message;
use serde::{Deserialize, Serialize};

use super::table::ClusterTable;
use crate::datafusion::functions::{open_blocking, At, MetadataTable, Params};
use crate::datafusion::gapfill::{GapFill, GapFillExec, GapFillParams};
use crate::datafusion::metadata_aggregates::{MetadataTotals, Total};
use crate::datafusion::{MetadataKind, TimeSeriesProvider};
use crate::metadata::Timestamp;
use crate::storage::TableLocation;
use crate::table::{Expected, TimeRange};

/// The first bytes of every node we encode: Ballista's protobuf messages never start so.
const MAGIC: &[u8] = b"tsq1";

/// A node of ours on the wire. No `Debug`: it may hold credentials.
#[derive(Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "snake_case")]
enum Wire {
    Table(TableWire),
    Function {
        function: String,
        params: ParamsWire,
        table: TableWire,
    },
    GapFill {
        params: GapFillParams,
    },
    GapFillExec {
        params: GapFillParams,
        schema: Vec<u8>,
    },
    /// Totals answered from metadata (`SELECT count(*) FROM t`).
    Totals {
        totals: Vec<Total>,
        table: TableWire,
    },
    /// A `MemTable` (`CREATE TABLE ... AS VALUES`): its partitions as Arrow IPC streams.
    Memory {
        partitions: Vec<Vec<u8>>,
    },
}

/// A table: how to open it and which version the client saw.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash)]
struct TableWire {
    url: String,
    options: Vec<(String, String)>,
    version: u64,
    /// A past version (`snapshot()`): read exactly `version`, not the latest.
    pinned: bool,
}

/// The checked arguments of a table function call.
#[derive(Serialize, Deserialize)]
struct ParamsWire {
    window: Option<(i64, i64)>,
    length: std::time::Duration,
    end: Option<i64>,
    /// `table`, `always` or a schedule's text (what `Expected::parse` reads).
    expected: String,
    from_version: u64,
    to_version: Option<u64>,
}

impl ParamsWire {
    fn from_params(p: &Params) -> Self {
        ParamsWire {
            window: p.window.map(|w| (w.start.as_nanos(), w.end.as_nanos())),
            length: p.length,
            end: p.end.map(Timestamp::as_nanos),
            expected: match &p.expected {
                Expected::TableSchedule => "table".into(),
                Expected::Always => "always".into(),
                Expected::Schedule(schedule) => schedule.to_string(),
            },
            from_version: p.from_version,
            to_version: p.to_version,
        }
    }

    fn into_params(self) -> DfResult<Params> {
        Ok(Params {
            window: self
                .window
                .map(|(start, end)| TimeRange { start: Timestamp::from_nanos(start), end: Timestamp::from_nanos(end) }),
            length: self.length,
            end: self.end.map(Timestamp::from_nanos),
            expected: Expected::parse(&self.expected)?,
            from_version: self.from_version,
            to_version: self.to_version,
        })
    }
}

fn encode(wire: &Wire, buf: &mut Vec<u8>) -> DfResult<()> {
    buf.extend_from_slice(MAGIC);
    serde_json::to_writer(buf, wire).map_err(|e| DataFusionError::Internal(format!("cannot encode a plan node: {e}")))
}

/// Ours if the bytes start with [`MAGIC`]; `None` for Ballista's.
fn decode(buf: &[u8]) -> DfResult<Option<Wire>> {
    let Some(json) = buf.strip_prefix(MAGIC) else { return Ok(None) };
    serde_json::from_slice(json).map(Some).map_err(|e| {
        DataFusionError::Internal(format!("cannot decode a plan node (client and cluster versions differ?): {e}"))
    })
}

fn write_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> DfResult<Vec<u8>> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    Ok(writer.into_inner()?)
}

fn read_ipc(bytes: &[u8]) -> DfResult<Vec<RecordBatch>> {
    Ok(StreamReader::try_new(bytes, None)?.collect::<Result<Vec<_>, _>>()?)
}

fn table_wire(provider: &TimeSeriesProvider) -> DfResult<TableWire> {
    let handle = provider.handle();
    let reopen = handle.location().reopen().ok_or_else(|| {
        DataFusionError::Plan(format!(
            "the table at {} is in a store that exists only in this process, so a cluster cannot read it; use a path or a URL",
            handle.location()
        ))
    })?;
    Ok(TableWire {
        url: reopen.url.clone(),
        options: reopen.options.clone(),
        version: handle.version(),
        pinned: handle.is_pinned(),
    })
}

/// The logical codec: tables, table functions and gap filling, then Ballista's.
#[derive(Debug, Default)]
pub struct TableCodec {
    ballista: BallistaLogicalExtensionCodec,
    /// Tables opened by this process, by how they were named: a scheduler opens each live
    /// table once, and its statements catch up from there.
    opened: Mutex<HashMap<TableWire, TimeSeriesProvider>>,
}

impl std::fmt::Debug for TableWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The options may be credentials: only their names.
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "{} (options {keys:?}) at version {}", self.url, self.version)
    }
}

/// How many opened tables a process keeps: live ones, and past versions named by
/// `snapshot()` (each version is its own entry).
const OPENED_LIMIT: usize = 256;

impl TableCodec {
    /// The provider for `wire`, opened on first use.
    fn provider(&self, wire: TableWire) -> DfResult<TimeSeriesProvider> {
        // A live table is one entry whatever version the client saw: it catches up itself.
        let key = TableWire { version: if wire.pinned { wire.version } else { 0 }, ..wire.clone() };
        if let Some(found) = self.opened.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(found.clone());
        }
        let location = TableLocation::parse_with_options(&wire.url, &wire.options)?;
        let at = if wire.pinned { At::Version(wire.version) } else { At::Latest };
        let table = open_blocking(location, at)?;
        let provider = TimeSeriesProvider::try_new(table)?;
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if opened.len() >= OPENED_LIMIT {
            opened.clear();
        }
        opened.insert(key, provider.clone());
        Ok(provider)
    }
}

impl LogicalExtensionCodec for TableCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> DfResult<Extension> {
        match decode(buf)? {
            Some(Wire::GapFill { params }) => {
                let [input] = inputs else {
                    return Err(DataFusionError::Internal("a gap fill node has one input".into()));
                };
                Ok(Extension { node: Arc::new(GapFill::try_new(Arc::new(input.clone()), params)?) })
            }
            Some(_) => Err(DataFusionError::Internal("a table node where a plan node was expected".into())),
            None => self.ballista.try_decode(buf, inputs, ctx),
        }
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        match node.node.as_any().downcast_ref::<GapFill>() {
            Some(gap_fill) => encode(&Wire::GapFill { params: gap_fill.params.clone() }, buf),
            None => self.ballista.try_encode(node, buf),
        }
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        match decode(buf)? {
            Some(Wire::Table(wire)) => Ok(Arc::new(ClusterTable::new(self.provider(wire)?))),
            Some(Wire::Function { function, params, table }) => {
                let kind = MetadataKind::ALL
                    .into_iter()
                    .find(|k| k.name() == function)
                    .ok_or_else(|| DataFusionError::Internal(format!("unknown table function {function}")))?;
                let provider = self.provider(table)?;
                Ok(Arc::new(MetadataTable { kind, provider, params: params.into_params()?, schema }))
            }
            Some(Wire::Totals { totals, table }) => {
                Ok(Arc::new(MetadataTotals { provider: self.provider(table)?, totals, schema }))
            }
            Some(Wire::Memory { partitions }) => {
                let partitions = partitions.iter().map(|bytes| read_ipc(bytes)).collect::<DfResult<Vec<_>>>()?;
                Ok(Arc::new(MemTable::try_new(schema, partitions)?))
            }
            Some(_) => Err(DataFusionError::Internal("a plan node where a table was expected".into())),
            None => self.ballista.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        if let Some(provider) = node.downcast_ref::<TimeSeriesProvider>() {
            return encode(&Wire::Table(table_wire(provider)?), buf);
        }
        if let Some(table) = node.downcast_ref::<ClusterTable>() {
            return encode(&Wire::Table(table_wire(table.provider())?), buf);
        }
        if let Some(function) = node.downcast_ref::<MetadataTable>() {
            let wire = Wire::Function {
                function: function.kind.name().to_string(),
                params: ParamsWire::from_params(&function.params),
                table: table_wire(&function.provider)?,
            };
            return encode(&wire, buf);
        }
        if let Some(totals) = node.downcast_ref::<MetadataTotals>() {
            let wire = Wire::Totals { totals: totals.totals.clone(), table: table_wire(&totals.provider)? };
            return encode(&wire, buf);
        }
        if let Some(memory) = node.downcast_ref::<MemTable>() {
            let partitions = memory
                .batches
                .iter()
                .map(|partition| {
                    let batches = partition.try_read().map_err(|_| {
                        DataFusionError::Plan(format!("the memory table {table_ref} is being written to; try again"))
                    })?;
                    write_ipc(&memory.schema(), &batches)
                })
                .collect::<DfResult<Vec<_>>>()?;
            return encode(&Wire::Memory { partitions }, buf);
        }
        self.ballista.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>,
    ) -> DfResult<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}

/// The physical codec: gap filling, then Ballista's.
#[derive(Debug, Default)]
pub struct PlanCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for PlanCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match decode(buf)? {
            Some(Wire::GapFillExec { params, schema }) => {
                let [input] = inputs else {
                    return Err(DataFusionError::Internal("a gap fill node has one input".into()));
                };
                let schema = datafusion_proto::protobuf::Schema::decode(schema.as_slice())
                    .map_err(|e| DataFusionError::Internal(format!("cannot decode a gap fill schema: {e}")))?;
                let schema: Schema = (&schema).try_into()?;
                Ok(Arc::new(GapFillExec::try_new(Arc::clone(input), params, Arc::new(schema))?))
            }
            Some(_) => Err(DataFusionError::Internal("a table node where an execution node was expected".into())),
            None => self.ballista.try_decode(buf, inputs, ctx, proto_converter),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        if let Some(gap_fill) = node.downcast_ref::<GapFillExec>() {
            let schema = datafusion_proto::protobuf::Schema::try_from(gap_fill.schema().as_ref())?;
            let wire = Wire::GapFillExec { params: gap_fill.params().clone(), schema: schema.encode_to_vec() };
            return encode(&wire, buf);
        }
        self.ballista.try_encode(node, buf, proto_converter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_table() -> TableWire {
        TableWire {
            url: "s3://bucket/t".into(),
            options: vec![("secret_access_key".into(), "hunter2".into()), ("region".into(), "eu-west-1".into())],
            version: 7,
            pinned: false,
        }
    }

    #[test]
    fn a_table_prints_its_option_names_not_their_values() {
        let printed = format!("{:?}", secret_table());
        assert!(printed.contains("secret_access_key") && printed.contains("s3://bucket/t"), "{printed}");
        assert!(!printed.contains("hunter2") && !printed.contains("eu-west-1"), "{printed}");
    }

    #[test]
    fn our_nodes_round_trip_and_others_are_left_to_ballista() {
        let mut buf = Vec::new();
        encode(&Wire::Table(secret_table()), &mut buf).unwrap();
        match decode(&buf).unwrap() {
            Some(Wire::Table(table)) => assert!(table == secret_table()),
            _ => panic!("a table decodes as a table"),
        }
        // Ballista's protobuf (or anything else) is not ours.
        assert!(decode(b"\x0a\x03abc").unwrap().is_none());
        // Ours but damaged: an error, not a silent hand-over.
        assert!(decode(b"tsq1{not json").is_err());
    }

    #[test]
    fn function_arguments_survive_the_trip() {
        let params = Params {
            window: Some(TimeRange { start: Timestamp::from_nanos(1), end: Timestamp::from_nanos(2) }),
            length: std::time::Duration::from_secs(3600),
            end: Some(Timestamp::from_nanos(5)),
            expected: Expected::parse("UTC; Mon-Fri 09:30-16:00").unwrap(),
            from_version: 3,
            to_version: Some(4),
        };
        let back = ParamsWire::from_params(&params).into_params().unwrap();
        assert_eq!(format!("{params:?}"), format!("{back:?}"));
        assert!(matches!(
            ParamsWire::from_params(&Params::default()).into_params().unwrap().expected,
            Expected::TableSchedule
        ));
    }
}
