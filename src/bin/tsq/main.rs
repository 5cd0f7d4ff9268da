//! `tsq`: the command-line face of timeseries-table-core.
//!
//! This file holds the argument definitions (clap derive; the `--help` text lives in the
//! doc comments below) and the dispatch. Every command goes through the library; the
//! binary only parses arguments and prints results. Errors end up in [`main`], which
//! prints them as one line on stderr and exits non-zero; nothing here panics on input.

mod commands;
mod demo;
mod heatmap;
mod maintain;
mod output;
mod report;
mod shell;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use timeseries_table_core::metadata::TimeBucket;

/// Query and maintain time-series tables: Parquet segments plus a transaction log that
/// knows, per entity and time bucket, which data is present.
///
/// Start with `tsq demo` to build a sample table and see the SQL it answers.
#[derive(Debug, Parser)]
#[command(name = "tsq", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// An option for a cloud store, KEY=VALUE; repeat for several (e.g. --storage-option
    /// aws.endpoint=http://127.0.0.1:9000 --storage-option aws.region=us-east-1).
    /// Environment variables (AWS_ACCESS_KEY_ID, ...) are read as well.
    #[arg(long = "storage-option", value_name = "KEY=VALUE", global = true, value_parser = storage_option)]
    storage_options: Vec<(String, String)>,
}

fn storage_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an empty table in DIR (its schema is fixed by the first append).
    #[command(after_help = "Example:\n  tsq create prices --time-column ts --bucket 1m --entity symbol")]
    Create {
        /// Folder (or URL such as file:///abs/path) for the new table.
        dir: String,
        /// Name of the timestamp column in the data.
        #[arg(long, value_name = "COLUMN")]
        time_column: String,
        /// Coverage granularity: <n><unit> with unit s, m, h or d (30s, 1m, 15m, 1h, 1d).
        #[arg(long)]
        bucket: TimeBucket,
        /// Column that identifies an entity (symbol, sensor id...); repeat for composite keys.
        #[arg(long = "entity", value_name = "COLUMN")]
        entities: Vec<String>,
        /// Require the time column to carry this time zone (e.g. UTC, +05:30 or
        /// America/New_York). Day buckets then follow its local days.
        #[arg(long, value_name = "TZ")]
        timezone: Option<String>,
        /// When data is expected, so coverage and gaps count only those buckets, e.g.
        /// "America/New_York; Mon-Fri 09:30-16:00; closed 2024-01-15; 2024-11-29 09:30-13:00".
        #[arg(long, value_name = "SCHEDULE")]
        schedule: Option<String>,
    },
    /// Append Parquet, CSV or newline-delimited JSON files to the table in DIR, one atomic
    /// commit per file.
    ///
    /// Files are appended in the order given, each streamed with bounded memory. Rows out
    /// of time order are sorted (on disk beyond --memory-limit); a Parquet file already in
    /// time order is stored as it is. A file that is rejected (it overlaps data already in
    /// the table, or its schema differs) stops the run; the files before it stay committed
    /// and nothing of the rejected file is kept.
    Append {
        /// The table folder.
        dir: String,
        /// Files to append: .parquet, .csv (with a header row), or .ndjson/.jsonl/.json.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Rows per new segment (a segment closes at the next new timestamp after this many).
        #[arg(long, value_name = "ROWS")]
        segment_rows: Option<u64>,
        /// Memory one append may hold, e.g. 256MiB or 1GiB; unsorted input beyond it is
        /// sorted on disk.
        #[arg(long, value_name = "SIZE")]
        memory_limit: Option<String>,
        /// Accept files with columns the table lacks: they are added after the table's
        /// own as nullable columns, and earlier rows read them as NULL.
        #[arg(long)]
        evolve_schema: bool,
    },
    /// Run SQL against tables: one statement, or a file of statements separated by `;`.
    ///
    /// Besides SELECT, INSERT and DELETE, the table functions coverage(t [, start, end]
    /// [, schedule]), gaps(t [, start, end] [, schedule]), last_covered_window(t, length
    /// [, end] [, schedule]), coverage_changes(t, from_version [, to_version]),
    /// segments(t) and history(t) answer questions about what data is present, and
    /// snapshot(t, version_or_time) reads a past version in FROM.
    #[command(
        after_help = "Examples:\n  tsq sql -t bars=tsq-demo/table \"SELECT symbol, count(*) FROM bars GROUP BY symbol\"\n  tsq sql -t tsq-demo/table \"SELECT * FROM gaps('table') LIMIT 10\"\n  tsq sql -t bars=tsq-demo/table --format csv -f report.sql"
    )]
    Sql {
        #[command(flatten)]
        tables: TableArgs,
        /// How to print results.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Read the statements from this file instead of the command line.
        #[arg(short = 'f', long = "file", value_name = "FILE.sql", conflicts_with = "sql")]
        file: Option<PathBuf>,
        /// Run the queries on a Ballista cluster (started with `tsq cluster`), e.g.
        /// df://127.0.0.1:50050. The tables must be at paths or URLs the cluster can read.
        #[cfg(feature = "ballista")]
        #[arg(long, value_name = "df://HOST:PORT")]
        cluster: Option<String>,
        /// The SQL to run (quote it for your shell).
        #[arg(required_unless_present = "file")]
        sql: Option<String>,
    },
    /// Interactive SQL prompt with history; statements end with `;`.
    ///
    /// Inside the shell: \timing toggles query timing, \d lists tables, \q or exit quits.
    Shell {
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Show a table's spec, schema, version, segments, rows, time span and coverage.
    Info {
        /// The table folder.
        dir: String,
    },
    /// Per-entity coverage: how many time buckets hold data, and the gaps between them.
    ///
    /// Without --from/--to the window is the table's covered extent (first to last
    /// covered bucket of any entity). With a schedule (the table's or --schedule) only
    /// scheduled buckets are expected.
    Coverage {
        /// The table folder.
        dir: String,
        #[command(flatten)]
        window: WindowArgs,
        /// Instead, list the buckets each entity gained (or lost) since version N.
        #[arg(long, value_name = "N", conflicts_with_all = ["from", "to", "plot", "schedule"])]
        since_version: Option<u64>,
        /// Also draw a heatmap to this SVG file: one row per entity, time across, colour =
        /// share of buckets with data. Stretches when no entity has data (nights,
        /// weekends) are left out and marked, so the picture is spent on the data.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
    },
    /// List the missing runs of buckets (gaps) per entity.
    Gaps {
        /// The table folder.
        dir: String,
        #[command(flatten)]
        window: WindowArgs,
    },
    /// Merge small and unsorted segments into time-sorted ones of a target size.
    ///
    /// One commit; rows, coverage and query answers stay the same. Tables fed by many
    /// small appends or INSERTs collect many small files; compacting makes scans and
    /// planning cheaper. The old files stay (time travel still reads them) until
    /// `tsq vacuum` removes them after its retention.
    #[command(after_help = "Example:\n  tsq compact prices --target-rows 1000000 --dry-run")]
    Compact {
        /// The table folder.
        dir: String,
        /// Rows per merged segment (default 4,194,304); segments under half of it are merged.
        #[arg(long, value_name = "ROWS")]
        target_rows: Option<u64>,
        /// Only show what would be merged.
        #[arg(long)]
        dry_run: bool,
    },
    /// Replace the rows of a time range (optionally of some entities) with new files.
    ///
    /// One commit: readers see the old rows or the new, never a hole. The range must
    /// start and end on bucket boundaries, and every row of the files must lie inside it
    /// (and belong to the given entities); otherwise nothing is replaced.
    #[command(
        after_help = "Example (a vendor re-delivered AAPL for one day):\n  tsq replace prices --from 2024-01-10 --to 2024-01-11 --entity symbol=AAPL aapl-2024-01-10.parquet"
    )]
    Replace {
        /// The table folder.
        dir: String,
        /// Start of the replaced range (inclusive), e.g. 2024-01-10 or 2024-01-10T14:30:00Z.
        #[arg(long, value_name = "T")]
        from: String,
        /// End of the replaced range (exclusive).
        #[arg(long, value_name = "T")]
        to: String,
        /// Replace only this entity's rows: COLUMN=VALUE; repeat for several.
        #[arg(long = "entity", value_name = "COLUMN=VALUE")]
        entities: Vec<String>,
        /// The new rows: .parquet, .csv or .ndjson files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Change a table's schema.
    Alter {
        /// The table folder.
        dir: String,
        #[command(subcommand)]
        change: AlterCommand,
    },
    /// Delete files no version within the retention needs.
    ///
    /// That is files of failed writes, and files of segments removed (by compact, DELETE
    /// or replace) longer ago than the retention. Time travel to a version older than the
    /// retention may then fail to read its data.
    Vacuum {
        /// The table folder.
        dir: String,
        /// Keep unreferenced files younger than this, e.g. 1h, 30m, 7d (default 1h).
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        retention: String,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run a process of a Ballista cluster that queries these tables (see DISTRIBUTED.md).
    #[cfg(feature = "ballista")]
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Build a sample market-data table, run the SQL examples on it and draw its coverage.
    ///
    /// Writes one Parquet file per trading day to DIR/incoming, creates DIR/table,
    /// appends the files, runs sql-examples/*.sql against it (as table `bars`) and writes
    /// DIR/coverage.svg.
    Demo {
        /// Where to build it (default: ./tsq-demo, or ./tsq-demo-N if that exists).
        dir: Option<PathBuf>,
        /// A small dataset (6 symbols × 5 days) instead of 30 symbols × 20 days.
        #[arg(long)]
        small: bool,
    },
}

/// The processes of a cluster.
#[cfg(feature = "ballista")]
#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// The scheduler: plans each query (it opens the tables and prunes segments) and hands
    /// its stages to the executors. Runs until stopped.
    #[command(after_help = "Example:\n  tsq cluster scheduler --bind 0.0.0.0:50050")]
    Scheduler {
        /// Address to listen on.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
    },
    /// An executor: runs query stages for the scheduler and reads the table segments.
    /// Runs until stopped.
    #[command(
        after_help = "Example:\n  tsq cluster executor --scheduler 10.0.0.1:50050 --host 10.0.0.2 --concurrency 8"
    )]
    Executor {
        /// The scheduler's address.
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: String,
        /// Task slots: how many partitions run at once (default: the number of cores).
        #[arg(long, value_name = "N")]
        concurrency: Option<usize>,
        /// The address this executor listens on, and that the others reach it at.
        #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
        host: String,
        /// Port for shuffle data (Arrow Flight).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Port for the scheduler's calls.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
    },
}

/// What `tsq alter` changes.
#[derive(Debug, Subcommand)]
enum AlterCommand {
    /// Add a nullable column after the existing ones; rows already in the table read it
    /// as NULL.
    #[command(after_help = "Example:\n  tsq alter prices add-column vwap float64")]
    AddColumn {
        /// The new column's name.
        name: String,
        /// Its type: boolean, int8..int64, uint8..uint64, float32, float64 (double), utf8
        /// (string), binary, date32, decimal128(p,s), timestamp(unit[,zone]).
        #[arg(value_name = "TYPE")]
        data_type: String,
    },
    /// Set the schedule coverage is judged against ("none" removes it). Nothing is
    /// rewritten; coverage, gaps and the heatmap count scheduled buckets only.
    #[command(
        after_help = "Example:\n  tsq alter prices set-schedule \"America/New_York; Mon-Fri 09:30-16:00; closed 2024-01-15\"\n\nSyntax: clauses separated by ';': a time zone (IANA name, UTC or +05:30; default: the\ntable's), weekly sessions (\"Mon-Fri 09:30-16:00\", \"Sat,Sun 10:00-12:00 13:00-15:00\", \"daily\n00:00-24:00\"), closed days (\"closed 2024-07-04, 2024-12-25\") and shortened days\n(\"2024-11-29 09:30-13:00\")."
    )]
    SetSchedule {
        /// The schedule, or "none".
        schedule: String,
    },
}

/// `-t NAME=DIR` options shared by `sql` and `shell`.
#[derive(Debug, clap::Args)]
struct TableArgs {
    /// Register a table: NAME=DIR, or just DIR to use the folder name as the table name.
    /// Append @VERSION to read the table as of that version (read-only): NAME=DIR@12.
    #[arg(short = 't', long = "table", value_name = "NAME=DIR[@VERSION]")]
    tables: Vec<String>,
}

/// `--from T --to T` options shared by `coverage` and `gaps`.
#[derive(Debug, clap::Args)]
struct WindowArgs {
    /// Start of the window (inclusive), e.g. 2024-01-02 or 2024-01-02T14:30:00Z.
    #[arg(long, value_name = "T", requires = "to")]
    from: Option<String>,
    /// End of the window (exclusive).
    #[arg(long, value_name = "T", requires = "from")]
    to: Option<String>,
    /// Judge against this schedule instead of the table's ("always": every bucket).
    #[arg(long, value_name = "SCHEDULE")]
    schedule: Option<String>,
}

impl From<WindowArgs> for report::Window {
    fn from(args: WindowArgs) -> Self {
        report::Window { from: args.from, to: args.to, schedule: args.schedule }
    }
}

/// Output format of `tsq sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned text tables.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects per statement.
    Json,
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", output::describe_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// glibc hands large freed blocks back to the system, so the next allocation of that size
/// faults its pages in afresh. An append allocates and frees tens of MiB per file
/// (decoded, sorted and encoded columns): with the defaults a fifth of its CPU time went
/// to page faults. `tsq` runs one command (or one shell session) and exits, so it keeps
/// freed memory for reuse instead, and its resident memory stays near its peak until it
/// exits (BENCHMARKS.md, "Ingest without idle cores or page faults": peak memory about a
/// tenth higher, the append a sixth faster). Setting one threshold alone turns off glibc's
/// own adjustment of both, which is slower than the defaults, hence both or neither.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator thresholds; called before any other thread
    // exists.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20) == 1 {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn run(cli: Cli) -> anyhow::Result<()> {
    commands::set_storage_options(cli.storage_options);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Shell { tables } => shell::run(&runtime, &tables.tables),
        Command::Create { dir, time_column, bucket, entities, timezone, schedule } => runtime.block_on(
            commands::create(&dir, &time_column, bucket, &entities, timezone.as_deref(), schedule.as_deref()),
        ),
        Command::Append { dir, files, segment_rows, memory_limit, evolve_schema } => {
            runtime.block_on(commands::append(&dir, &files, segment_rows, memory_limit.as_deref(), evolve_schema))
        }
        Command::Compact { dir, target_rows, dry_run } => {
            runtime.block_on(maintain::compact(&dir, target_rows, dry_run))
        }
        Command::Replace { dir, from, to, entities, files } => {
            runtime.block_on(maintain::replace(&dir, &from, &to, &entities, &files))
        }
        Command::Alter { dir, change: AlterCommand::AddColumn { name, data_type } } => {
            runtime.block_on(maintain::add_column(&dir, &name, &data_type))
        }
        Command::Alter { dir, change: AlterCommand::SetSchedule { schedule } } => {
            runtime.block_on(maintain::set_schedule(&dir, &schedule))
        }
        Command::Vacuum { dir, retention, dry_run } => runtime.block_on(maintain::vacuum(&dir, &retention, dry_run)),
        #[cfg(feature = "ballista")]
        Command::Sql { tables, format, file, sql, cluster } => {
            runtime.block_on(commands::sql(&tables.tables, format, file.as_deref(), sql.as_deref(), cluster.as_deref()))
        }
        #[cfg(not(feature = "ballista"))]
        Command::Sql { tables, format, file, sql } => {
            runtime.block_on(commands::sql(&tables.tables, format, file.as_deref(), sql.as_deref(), None))
        }
        #[cfg(feature = "ballista")]
        Command::Cluster(command) => runtime.block_on(commands::cluster(command)),
        Command::Info { dir } => runtime.block_on(report::info(&dir)),
        Command::Coverage { dir, since_version: Some(version), .. } => {
            runtime.block_on(report::coverage_changes(&dir, version))
        }
        Command::Coverage { dir, window, plot, since_version: None } => {
            runtime.block_on(report::coverage(&dir, &window.into(), plot.as_deref()))
        }
        Command::Gaps { dir, window } => runtime.block_on(report::gaps(&dir, &window.into())),
        Command::Demo { dir, small } => runtime.block_on(demo::run(dir, small)),
    }
}
