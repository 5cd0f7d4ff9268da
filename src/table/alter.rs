//! Changing the table schema: adding nullable columns. Segments written before read the
//! new columns as nulls; nothing is rewritten. Dropping, renaming or retyping a column is
//! not possible (it would change what older segments mean).
//!
//! Does I/O: commits through the log.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};

use super::append::{backoff, MAX_COMMIT_ATTEMPTS};
use super::TimeSeriesTable;
use crate::error::{Error, Result};
use crate::metadata::schema::check_new_column;
use crate::metadata::TableMeta;
use crate::transaction_log::{Commit, CommitOutcome, LogAction};

impl TimeSeriesTable {
    /// Adds nullable `columns` after the table's own, in one `add_columns` commit; returns
    /// the version. A column that is not nullable, has an existing name or a type the
    /// format cannot store is refused, and the table is left as it was.
    #[tracing::instrument(skip_all, fields(location = %self.location()))]
    pub async fn add_columns(&mut self, columns: Vec<Field>) -> Result<u64> {
        self.writable()?;
        if columns.is_empty() {
            return Err(Error::invalid_input("no column to add"));
        }
        if let Some(field) = columns.iter().find(|f| !f.is_nullable()) {
            return Err(Error::invalid_input(format!(
                "column '{}' must be nullable: the rows already in the table have no value for it",
                field.name()
            )));
        }
        for attempt in 1..=MAX_COMMIT_ATTEMPTS {
            self.refresh().await?;
            let snapshot = self.snapshot();
            let Some(table) = snapshot.meta().schema.clone() else {
                return Err(Error::invalid_input(
                    "the table has no schema yet: its first append fixes it, with whatever columns the data has",
                ));
            };
            let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
            for column in &columns {
                check_new_column(&Schema::new(fields.clone()), column)?;
                fields.push(column.clone());
            }
            let schema = Arc::new(Schema::new_with_metadata(fields, table.metadata().clone()));
            let meta = TableMeta { time_index: snapshot.spec().clone(), schema: Some(schema) };
            // Checks the types against the log's vocabulary before anything is written.
            serde_json::to_vec(&meta).map_err(|e| Error::invalid_input(e.to_string()))?;
            let version = snapshot.version() + 1;
            let commit = Commit::new(version, "add_columns", vec![LogAction::UpdateTableMeta(meta)]);
            match self.log.try_commit(&commit).await? {
                CommitOutcome::Committed => {
                    // The rows are unchanged: keep the coverage if it is loaded, else it loads
                    // when first asked for.
                    self.adopt_commit(&snapshot, &commit, snapshot.loaded_coverage()).await?;
                    return Ok(version);
                }
                CommitOutcome::Conflict => tokio::time::sleep(backoff(attempt)).await,
            }
        }
        Err(Error::Conflict { version: self.version() + 1, attempts: MAX_COMMIT_ATTEMPTS })
    }
}
