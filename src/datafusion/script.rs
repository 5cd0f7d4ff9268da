//! SQL scripts: splitting text into statements (on `;` outside quotes and comments) and
//! running them one after another in a session. Used by `tsq sql -f`, `tsq shell`,
//! `tsq demo` and the SQL example tests.

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;

use crate::error::Result;

/// One executed statement and its result.
#[derive(Debug)]
pub struct StatementResult {
    /// The statement as run: trimmed, without `--` comments or the closing `;`.
    pub sql: String,
    /// The batches it returned (possibly none).
    pub batches: Vec<RecordBatch>,
}

/// Splits a script into statements on `;` outside quotes. `--` comments are removed
/// (block comments are not recognised) and empty statements are dropped.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = script.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    current.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            current.push('\n');
                            break;
                        }
                    }
                }
                ';' => {
                    push_statement(&mut statements, &current);
                    current.clear();
                }
                _ => current.push(c),
            },
        }
    }
    push_statement(&mut statements, &current);
    statements
}

fn push_statement(statements: &mut Vec<String>, text: &str) {
    let trimmed = text.trim();
    if !trimmed.is_empty() {
        statements.push(trimmed.to_string());
    }
}

/// Whether `text` ends a statement (its last non-comment character is `;` outside
/// quotes); used by the shell to know when a multi-line statement is complete.
pub fn is_complete(text: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut last = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                last = Some(c);
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    last = Some(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                c if c.is_whitespace() => {}
                c => last = Some(c),
            },
        }
    }
    quote.is_none() && last == Some(';')
}

/// Runs every statement of `script` in order, stopping at the first error.
pub async fn run_script(ctx: &SessionContext, script: &str) -> Result<Vec<StatementResult>> {
    let mut results = Vec::new();
    for sql in split_statements(script) {
        let batches = ctx.sql(&sql).await?.collect().await?;
        results.push(StatementResult { sql, batches });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let script =
            "-- intro; not a statement\nSELECT 'a;b' AS x;\n\nSELECT 2 -- trailing; comment\n;  -- only a comment\n";
        assert_eq!(split_statements(script), vec!["SELECT 'a;b' AS x".to_string(), "SELECT 2".to_string()]);
        assert!(is_complete("SELECT 1;\n"));
        assert!(is_complete("SELECT 1; -- done"));
        assert!(!is_complete("SELECT ';'"));
        assert!(!is_complete("SELECT 1"));
    }
}
