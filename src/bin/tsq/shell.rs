//! `tsq shell`: an interactive SQL prompt (rustyline) over one DataFusion session.
//!
//! Lines accumulate until the library's `is_complete` says the statement ended with `;`.
//! Backslash commands: `\timing`, `\d`, `\?`, `\q`. An error is printed and the shell
//! goes on. History is kept in `~/.tsq_history` (or the temp dir without a home).
//! Reads stdin without prompts when it is not a terminal, so scripts can be piped in.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use datafusion::prelude::SessionContext;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use timeseries_table_core::datafusion::script::{is_complete, split_statements};
use timeseries_table_core::datafusion::{session_context, TimeSeriesProvider};

use crate::commands::{register_tables, run_statement};
use crate::output::{write_result, TextTable};
use crate::Format;

const HELP: &str = "Statements end with ';' and may span lines.
  \\timing   toggle printing how long each statement took
  \\d        list the tables registered in this session
  \\?        this help
  \\q        quit (also: exit, quit, Ctrl-D)
Table functions: coverage(t [, start, end] [, schedule]), gaps(t [, start, end] [, schedule]),
  last_covered_window(t, length [, end] [, schedule]), coverage_changes(t, from [, to]),
  segments(t), history(t); snapshot(t, version_or_time) reads a past version in FROM
More tables: CREATE EXTERNAL TABLE name STORED AS TIMESERIES LOCATION 'dir';";

fn history_path() -> PathBuf {
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".tsq_history"),
        None => std::env::temp_dir().join("tsq_history"),
    }
}

pub fn run(runtime: &tokio::runtime::Runtime, tables: &[String]) -> anyhow::Result<()> {
    let ctx = session_context();
    let registered = runtime.block_on(register_tables(&ctx, tables))?;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if interactive {
        println!("tsq shell: SQL over time-series tables. Type \\? for help, \\q to quit.");
        for (name, dir) in &registered {
            println!("  table {name} -> {dir}");
        }
    }
    let mut editor = DefaultEditor::new()?;
    let history = history_path();
    let _ = editor.load_history(&history); // no history yet is fine
    let mut timing = false;
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "tsq> " } else { "  -> " };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear(); // Ctrl-C drops the statement being typed
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if buffer.is_empty() {
            match trimmed {
                "" => continue,
                "\\q" | "exit" | "quit" | "exit;" | "quit;" => break,
                "\\timing" => {
                    timing = !timing;
                    println!("timing is {}", if timing { "on" } else { "off" });
                    let _ = editor.add_history_entry(trimmed);
                    continue;
                }
                "\\?" | "help" => {
                    println!("{HELP}");
                    continue;
                }
                "\\d" => {
                    let _ = editor.add_history_entry(trimmed);
                    if let Err(e) = runtime.block_on(list_tables(&ctx)) {
                        eprintln!("error: {}", crate::output::describe_error(&e));
                    }
                    continue;
                }
                other if other.starts_with('\\') => {
                    eprintln!("error: unknown command {other}; type \\? for help");
                    continue;
                }
                _ => {}
            }
        }
        if !buffer.is_empty() {
            buffer.push('\n');
        }
        buffer.push_str(&line);
        if !is_complete(&buffer) {
            continue;
        }
        let _ = editor.add_history_entry(buffer.as_str());
        for statement in split_statements(&buffer) {
            run_sql(runtime, &ctx, &statement, timing);
        }
        buffer.clear();
    }
    if !buffer.trim().is_empty() {
        // Input ended in the middle of a statement (e.g. a piped script without the last ';').
        for statement in split_statements(&buffer) {
            run_sql(runtime, &ctx, &statement, timing);
        }
    }
    if interactive {
        let _ = editor.save_history(&history); // losing history is not worth an error
    }
    Ok(())
}

/// `\d`: the tables of the session and, for time-series tables, their index.
async fn list_tables(ctx: &SessionContext) -> anyhow::Result<()> {
    let mut text = TextTable::new(&[("table", false), ("kind", false)]);
    for catalog_name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else { continue };
            let mut names = schema.table_names();
            names.sort();
            for name in names {
                let Some(table) = schema.table(&name).await? else { continue };
                let kind = match table.downcast_ref::<TimeSeriesProvider>() {
                    Some(p) => {
                        let spec = p.spec();
                        let entities = if spec.entity_columns.is_empty() {
                            "-".to_string()
                        } else {
                            spec.entity_columns.join(", ")
                        };
                        format!(
                            "time series (time column {}, bucket {}, entities {entities})",
                            spec.time_column, spec.bucket
                        )
                    }
                    None => "other".to_string(),
                };
                let qualified = if schema_name == "public" { name } else { format!("{schema_name}.{name}") };
                text.push(vec![qualified, kind]);
            }
        }
    }
    text.write(&mut std::io::stdout().lock())?;
    Ok(())
}

/// Runs one statement and prints its result or its error; never fails the shell.
fn run_sql(runtime: &tokio::runtime::Runtime, ctx: &SessionContext, sql: &str, timing: bool) {
    let started = Instant::now();
    let result = runtime.block_on(run_statement(ctx, sql));
    let mut out = std::io::stdout().lock();
    match result {
        Ok((schema, batches)) => {
            if let Err(e) = write_result(&mut out, &schema, &batches, Format::Table, None) {
                eprintln!("error: {}", crate::output::describe_error(&e));
            }
        }
        Err(e) => {
            let _ = out.flush();
            eprintln!("error: {}", e.describe());
        }
    }
    if timing {
        let _ = writeln!(out, "time: {:.3}s", started.elapsed().as_secs_f64());
    }
}
