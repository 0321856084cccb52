//! Running one file's section on the server: in one transaction together with its
//! version row (or statement by statement for `no-transaction` files), with the
//! server's error turned into `file:line:column: message`.
//!
//! Statements are sent one at a time even inside the transaction, so an error that
//! carries no position (a constraint, a division by zero) still names the line of
//! the statement that failed. While a statement runs, a cancel guard is armed: on
//! Ctrl-C it sends the server a cancel request, so the statement stops at once and
//! the transaction is rolled back instead of running on after pgbox is gone.

use std::time::Instant;

use tokio_postgres::error::ErrorPosition;
use tokio_postgres::Client;

use super::files::Migration;
use super::sql;
use super::table::{self, NewRow, Table};
use crate::cancel::Guard;
use crate::error::Fail;
use crate::pgclient::tls::Tls;

/// Which section runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// A statement of a file failed on the server.
#[derive(Debug, thiserror::Error)]
#[error("`{file}:{line}:{column}`: {message}")]
pub struct SqlError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub sqlstate: String,
}

/// Run `m`'s section in `dir` and record (up) or remove (down) its row. Returns the
/// milliseconds it took.
pub async fn run(
    c: &Client,
    tls: Tls,
    t: &Table,
    m: &Migration,
    dir: Direction,
) -> anyhow::Result<i64> {
    let range = match dir {
        Direction::Up => m.up.clone(),
        Direction::Down => m.down.clone().expect("callers check for a down section"),
    };
    let statements = sql::split(&m.text[range.clone()], range.start);
    let started = Instant::now();
    let token = c.cancel_token();
    let guard = Guard::future(
        "cancel the migration statement running on the server",
        async move {
            let _ = token.cancel_query(tls).await;
        },
    );
    if !m.no_transaction {
        c.batch_execute("begin").await?;
    }
    for (i, st) in statements.iter().enumerate() {
        if let Err(e) = c.batch_execute(st.text).await {
            guard.disarm();
            if !m.no_transaction {
                let _ = c.batch_execute("rollback").await;
            }
            return Err(located(e, m, st, i, statements.len()));
        }
    }
    let ms = started.elapsed().as_millis() as i64;
    let recorded = match dir {
        Direction::Up => {
            table::insert(
                c,
                t,
                &NewRow {
                    version: m.version,
                    name: &m.name,
                    sha256: &m.sha256,
                    duration_ms: ms,
                    no_transaction: m.no_transaction,
                    script: &m.text,
                    applied_at: None,
                },
            )
            .await
        }
        Direction::Down => table::delete(c, t, m.version).await,
    };
    if let Err(e) = recorded {
        guard.disarm();
        if !m.no_transaction {
            let _ = c.batch_execute("rollback").await;
        }
        return Err(e.context(format!(
            "cannot record `{}` in the version table",
            m.file_name()
        )));
    }
    if !m.no_transaction {
        c.batch_execute("commit").await?;
    }
    guard.disarm();
    Ok(ms)
}

/// The server's error as `file:line:column: message`, with what state it left.
fn located(
    e: tokio_postgres::Error,
    m: &Migration,
    st: &sql::Statement<'_>,
    index: usize,
    count: usize,
) -> anyhow::Error {
    let shown = m.path.display().to_string();
    let Some(db) = e.as_db_error() else {
        return anyhow::Error::new(e).context(format!("`{shown}`: the connection failed"));
    };
    let at = match db.position() {
        Some(ErrorPosition::Original(pos)) => st.offset + sql::byte_of_position(st.text, *pos),
        _ => st.offset,
    };
    let (line, column) = sql::line_col(&m.text, at);
    let mut message = db.message().to_string();
    if let Some(d) = db.detail() {
        message.push_str(&format!(" ({d})"));
    }
    let state = if m.no_transaction {
        format!(
            "the file runs without a transaction: its first {index} of {count} statements were applied and stay; it is not recorded, so the next `up` runs it again from the start (write such files to be re-runnable, e.g. `if not exists`)"
        )
    } else {
        "nothing of this file was applied: the database is as it was before it".into()
    };
    // 25001: a statement such as `CREATE INDEX CONCURRENTLY` in a transaction.
    let state = if db.code().code() == "25001" && !m.no_transaction {
        format!("put `-- pgbox:no-transaction` at the top of the file to run it outside a transaction; {state}")
    } else {
        state
    };
    let hint = match db.hint() {
        Some(h) => format!("{h}; {state}"),
        None => state,
    };
    Fail::typed(SqlError {
        file: shown,
        line,
        column,
        message,
        sqlstate: db.code().code().to_string(),
    })
    .hint(hint)
    .into()
}
