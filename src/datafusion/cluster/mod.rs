//! Distributed queries on Apache DataFusion Ballista (feature `ballista`).
//!
//! - [`remote_session_context`]: a client session whose queries run on a cluster.
//! - [`standalone_session_context`]: the same with a scheduler and executors started in
//!   this process, for tests and examples.
//! - [`run_scheduler`] / [`run_executor`]: the cluster processes (`tsq cluster ...`). They
//!   must carry our codecs and functions, so Ballista's stock binaries cannot serve.
//!
//! The client plans each statement's SQL (table functions are resolved there); the
//! scheduler opens the tables, prunes segments and computes table functions when it plans
//! the job; executors read the chosen segments from the shared storage. See
//! DISTRIBUTED.md. Starting processes does network I/O.

mod codec;
mod planner;
mod stores;
mod table;

use std::net::SocketAddr;
use std::sync::Arc;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::planner::BallistaQueryPlanner;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::BallistaCodec;
use ballista_core::utils::default_session_builder;
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use datafusion::error::Result as DfResult;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::protobuf::LogicalPlanNode;

pub use codec::{PlanCodec, TableCodec};

use crate::error::{Error, Result};

/// A session configuration for a cluster: Ballista's settings with our codecs.
pub fn cluster_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(table_codec())
        .with_ballista_physical_extension_codec(Arc::new(PlanCodec::default()))
}

/// The process's logical codec. One instance, so that whichever copy Ballista decodes
/// with, a scheduler opens each table once (the codec keeps what it opened).
fn table_codec() -> Arc<TableCodec> {
    static CODEC: std::sync::OnceLock<Arc<TableCodec>> = std::sync::OnceLock::new();
    Arc::clone(CODEC.get_or_init(Default::default))
}

fn codecs() -> BallistaCodec {
    BallistaCodec::new(table_codec(), Arc::new(PlanCodec::default()))
}

/// A client session whose queries run on the Ballista cluster at `url`
/// (`df://host:port`), with the table functions, the `STORED AS TIMESERIES` factory and
/// gap filling of [`super::session_context`]. Register tables as in a local session.
/// Writes (`INSERT`, `DELETE`, `UPDATE`) to our tables are refused: run them locally.
///
/// Fails with [`Error::SchedulerUnreachable`] when nothing answers at `url` within 5 s.
pub async fn remote_session_context(url: &str) -> Result<SessionContext> {
    let scheduler_url = check_scheduler(url).await?;
    let config = cluster_config();
    let ballista = BallistaQueryPlanner::<LogicalPlanNode>::with_extension(
        scheduler_url,
        config.ballista_config(),
        config.ballista_logical_extension_codec(),
    );
    let config = config.with_ballista_query_planner(Arc::new(planner::ClusterPlanner { ballista: Arc::new(ballista) }));
    let state = SessionStateBuilder::new().with_config(config).with_default_features().build();
    let local = SessionContext::new_with_state(state);
    // Before the upgrade: registering gap filling replaces the query planner, and after
    // the upgrade it would replace Ballista's, so queries would quietly run here.
    super::register_shared(&local);
    let ctx = SessionContext::remote_with_state(url, local.state()).await?;
    // The upgrade replaces the scalar functions with Ballista's list: add ours back.
    super::gapfill::register_functions(&ctx);
    Ok(ctx)
}

/// The scheduler's `http://host:port` for a `df://host:port` URL, once something
/// listens there.
async fn check_scheduler(url: &str) -> Result<String> {
    let unreachable = |reason: String| Error::SchedulerUnreachable { url: url.to_string(), reason };
    let parsed = url::Url::parse(url).map_err(|e| unreachable(format!("not a df://HOST:PORT address: {e}")))?;
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port()) else {
        return Err(unreachable("not a df://HOST:PORT address".into()));
    };
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => Ok(format!("http://{host}:{port}")),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable("no answer within 5 s".into())),
    }
}

/// A client session on a cluster started in this process: a scheduler and `executors`
/// executors of `concurrency` task slots each, all on `localhost` with free ports. They
/// run as long as the process does. The executors read cloud tables with
/// `storage_options` (and the environment). For tests and examples.
pub async fn standalone_session_context(
    executors: usize,
    concurrency: usize,
    storage_options: &[(String, String)],
) -> Result<SessionContext> {
    let config_producer: ConfigProducer = Arc::new(cluster_config);
    let address = ballista_scheduler::standalone::new_standalone_scheduler_with_builder(
        Arc::new(scheduler_session),
        Arc::clone(&config_producer),
        codecs(),
    )
    .await
    .map_err(cluster_error)?;
    let scheduler_url = format!("http://localhost:{}", address.port());
    for _ in 0..executors.max(1) {
        let scheduler = SchedulerGrpcClient::connect(scheduler_url.clone())
            .await
            .map_err(|e| Error::Cluster(format!("cannot reach the in-process scheduler: {e}")))?;
        ballista_executor::new_standalone_executor_from_builder(
            scheduler,
            concurrency.max(1),
            Arc::clone(&config_producer),
            executor_runtime(storage_options.to_vec()),
            codecs(),
            function_registry()?,
        )
        .await
        .map_err(cluster_error)?;
    }
    remote_session_context(&format!("df://localhost:{}", address.port())).await
}

/// The session a scheduler plans each client session's jobs in: Ballista's defaults with
/// our table functions, rules and gap-filling planner. Public for custom schedulers (set
/// it as `SchedulerConfig::override_session_builder`) and for measuring planning.
pub fn scheduler_session(config: SessionConfig) -> DfResult<SessionState> {
    let ctx = SessionContext::new_with_state(default_session_builder(config)?);
    super::register_shared(&ctx);
    Ok(ctx.state())
}

/// The functions executors resolve by name: the scheduler's.
fn function_registry() -> Result<BallistaFunctionRegistry> {
    Ok(BallistaFunctionRegistry::from(&scheduler_session(cluster_config())?))
}

/// Executors' runtimes: object stores resolved by [`stores::ExecutorStores`], one
/// registry per executor (its stores are reused across tasks).
fn executor_runtime(storage_options: Vec<(String, String)>) -> RuntimeProducer {
    let stores = Arc::new(stores::ExecutorStores::new(storage_options));
    Arc::new(move |_| Ok(Arc::new(RuntimeEnvBuilder::new().with_object_store_registry(stores.clone()).build()?)))
}

fn cluster_error(e: impl std::fmt::Display) -> Error {
    Error::Cluster(e.to_string())
}

/// Runs a scheduler listening on `bind` until the process ends.
pub async fn run_scheduler(bind: SocketAddr) -> Result<()> {
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host: bind.ip().to_string(),
        override_session_builder: Some(Arc::new(scheduler_session)),
        override_config_producer: Some(Arc::new(cluster_config)),
        override_logical_codec: Some(table_codec()),
        override_physical_codec: Some(Arc::new(PlanCodec::default())),
        // A dead executor is noticed in seconds, not the default minutes.
        executor_timeout_seconds: 20,
        expire_dead_executor_interval_seconds: 5,
        no_executors_grace_period_seconds: 20,
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(cluster_error)?;
    ballista_scheduler::scheduler_process::start_server(cluster, bind, Arc::new(config)).await.map_err(cluster_error)
}

/// Where an executor listens and whom it serves.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `host:port`.
    pub scheduler: String,
    /// The host this executor binds to and tells the others to reach it at.
    pub host: String,
    /// Its Arrow Flight port (where other executors fetch shuffle data).
    pub port: u16,
    /// Its gRPC port.
    pub grpc_port: u16,
    /// Task slots: how many partitions it runs at once.
    pub concurrency: usize,
    /// Options for the cloud stores it reads segments from (credentials, region,
    /// endpoint); the environment fills in the rest.
    pub storage_options: Vec<(String, String)>,
}

/// Runs an executor until the process ends.
pub async fn run_executor(options: ExecutorOptions) -> Result<()> {
    let (scheduler_host, scheduler_port) = options
        .scheduler
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_string(), port.parse::<u16>().ok()?)))
        .ok_or_else(|| Error::invalid_input(format!("--scheduler must be HOST:PORT, got '{}'", options.scheduler)))?;
    let config = ExecutorProcessConfig {
        scheduler_host,
        scheduler_port,
        bind_host: options.host.clone(),
        external_host: Some(options.host),
        port: options.port,
        grpc_port: options.grpc_port,
        vcores: options.concurrency.max(1),
        override_config_producer: Some(Arc::new(cluster_config)),
        override_logical_codec: Some(table_codec()),
        override_physical_codec: Some(Arc::new(PlanCodec::default())),
        override_function_registry: Some(Arc::new(function_registry()?)),
        override_runtime_producer: Some(executor_runtime(options.storage_options)),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config)).await.map_err(cluster_error)
}
