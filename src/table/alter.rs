//! Changing the table metadata: adding nullable columns, and setting the schedule coverage
//! is judged against. Segments written before read new columns as nulls; nothing is
//! rewritten. Dropping, renaming or retyping a column is not possible (it would change
//! what older segments mean).
//!
//! Does I/O: commits through the log.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};

use super::append::{backoff, MAX_COMMIT_ATTEMPTS};
use super::TimeSeriesTable;
use crate::error::{Error, Result};
use crate::metadata::schema::check_new_column;
use crate::metadata::{Schedule, TableMeta};
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
        self.commit_meta("add_columns", |meta| {
            let Some(table) = meta.schema.clone() else {
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
            Ok(TableMeta { schema: Some(schema), ..meta.clone() })
        })
        .await
    }

    /// Sets the schedule coverage is judged against (`None` removes it), in one
    /// `set_schedule` commit; returns the version. No data or coverage changes: the
    /// schedule only decides which buckets `coverage`, `gaps` and `last_covered_window`
    /// expect.
    #[tracing::instrument(skip_all, fields(location = %self.location()))]
    pub async fn set_schedule(&mut self, schedule: Option<Schedule>) -> Result<u64> {
        self.writable()?;
        self.commit_meta("set_schedule", |meta| Ok(TableMeta { schedule: schedule.clone(), ..meta.clone() })).await
    }

    /// Commits the metadata `change` makes of the latest metadata, retrying on conflict
    /// with the winner's metadata.
    async fn commit_meta(&mut self, operation: &str, change: impl Fn(&TableMeta) -> Result<TableMeta>) -> Result<u64> {
        for attempt in 1..=MAX_COMMIT_ATTEMPTS {
            self.refresh().await?;
            let snapshot = self.snapshot();
            let meta = change(snapshot.meta())?;
            // Checks the types against the log's vocabulary before anything is written.
            serde_json::to_vec(&meta).map_err(|e| Error::invalid_input(e.to_string()))?;
            let version = snapshot.version() + 1;
            let commit = Commit::new(version, operation, vec![LogAction::UpdateTableMeta(meta)]);
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
