//! `migrate status` (text or JSON: every file applied or pending, when, how long,
//! whether its checksum still matches, whether it ran without a transaction, and
//! rows whose file is gone) and `migrate repair` (the diff of each edited applied
//! file against the text it was applied with, then new checksums after a
//! confirmation).

use serde::Serialize;
use similar::TextDiff;

use super::conn;
use super::files::Migration;
use super::table::{self, Applied};
use super::Env;
use crate::error::Fail;
use crate::printer::Printer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Applied,
    Pending,
    /// Applied, but the file is gone.
    Missing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub version: i64,
    pub name: String,
    pub state: State,
    pub applied_at: Option<String>,
    pub duration_ms: Option<i64>,
    /// None when there is nothing to compare (pending or missing).
    pub checksum_ok: Option<bool>,
    pub no_transaction: bool,
    pub has_down: bool,
}

pub fn rows(files: &[Migration], applied: &[Applied]) -> Vec<Row> {
    let mut out: Vec<Row> = files
        .iter()
        .map(|m| {
            let a = applied.iter().find(|a| a.version == m.version);
            Row {
                version: m.version,
                name: m.name.clone(),
                state: if a.is_some() {
                    State::Applied
                } else {
                    State::Pending
                },
                applied_at: a.map(|a| a.applied_at.clone()),
                duration_ms: a.map(|a| a.duration_ms),
                checksum_ok: a.map(|a| a.sha256 == m.sha256),
                no_transaction: a.map_or(m.no_transaction, |a| a.no_transaction),
                has_down: m.down.is_some(),
            }
        })
        .collect();
    for a in applied
        .iter()
        .filter(|a| !files.iter().any(|m| m.version == a.version))
    {
        out.push(Row {
            version: a.version,
            name: a.name.clone(),
            state: State::Missing,
            applied_at: Some(a.applied_at.clone()),
            duration_ms: Some(a.duration_ms),
            checksum_ok: None,
            no_transaction: a.no_transaction,
            has_down: false,
        });
    }
    out.sort_by_key(|r| r.version);
    out
}

/// Print the status; false when an applied file changed or is missing on disk.
pub async fn status(env: &Env, json: bool, p: &Printer) -> anyhow::Result<bool> {
    let files = env.load()?;
    let c = env.target.connect().await?;
    let applied = table::read(&c, &env.table).await?;
    let rows = rows(&files, &applied);
    let clean = rows
        .iter()
        .all(|r| r.state != State::Missing && r.checksum_ok != Some(false));
    if json {
        p.data(serde_json::to_string_pretty(&serde_json::json!({
            "database": env.target.describe(),
            "table": env.table.display(),
            "migrations": rows,
        }))?);
        return Ok(clean);
    }
    for r in &rows {
        let state = match r.state {
            State::Applied => "applied",
            State::Pending => "pending",
            State::Missing => "missing",
        };
        let when = match (&r.applied_at, r.duration_ms) {
            (Some(at), Some(ms)) => format!("{at}  {ms:>6} ms"),
            _ => format!("{:<20}  {:>9}", "-", "-"),
        };
        let sum = match (r.state, r.checksum_ok) {
            (State::Missing, _) => "file missing on disk",
            (_, Some(true)) => "checksum ok",
            (_, Some(false)) => "CHANGED since applied",
            _ => "",
        };
        let tx = if r.no_transaction {
            "  no-transaction"
        } else {
            ""
        };
        p.data(format!(
            "{state:<8} {}_{}  {when}  {sum}{tx}",
            r.version, r.name
        ));
    }
    let count = |s| rows.iter().filter(|r| r.state == s).count();
    p.info(format!(
        "{}: {} applied, {} pending, {} missing on disk (table `{}`)",
        env.target.describe(),
        count(State::Applied),
        count(State::Pending),
        count(State::Missing),
        env.table.display()
    ));
    Ok(clean)
}

/// `migrate repair`: returns the number of checksums recorded.
pub async fn repair(env: &Env, yes: bool, p: &Printer) -> anyhow::Result<usize> {
    let files = env.load()?;
    let _lock = conn::lock(&env.target, &env.table.display(), p).await?;
    let c = env.target.connect().await?;
    let applied = table::read(&c, &env.table).await?;
    let edited: Vec<(&Migration, &Applied)> = files
        .iter()
        .filter_map(|m| {
            applied
                .iter()
                .find(|a| a.version == m.version && a.sha256 != m.sha256)
                .map(|a| (m, a))
        })
        .collect();
    for a in applied
        .iter()
        .filter(|a| !files.iter().any(|m| m.version == a.version))
    {
        p.warn(format!(
            "`{}` is applied but missing on disk; repair leaves its row alone",
            a.file_name()
        ));
    }
    if edited.is_empty() {
        p.done("every applied file matches its checksum; nothing to repair");
        return Ok(0);
    }
    for (m, a) in &edited {
        let old = a.script.as_deref().unwrap_or("");
        let diff = TextDiff::from_lines(old, &m.text);
        let label = m.path.display().to_string();
        let text = diff
            .unified_diff()
            .context_radius(3)
            .header(&format!("{label} (as applied)"), &format!("{label} (now)"))
            .to_string();
        if a.script.is_none() {
            p.info(format!(
                "`{label}`: the applied text was not recorded (an adopted history); no diff"
            ));
        } else {
            p.data(text.trim_end());
        }
    }
    let names: Vec<String> = edited
        .iter()
        .map(|(m, _)| format!("`{}`", m.file_name()))
        .collect();
    let question = format!(
        "record the new checksums of {}? the database is not changed: the edits are not applied",
        names.join(", ")
    );
    if !p.confirm(
        question,
        yes,
        "recording new checksums",
        "pass `--yes` to confirm",
    )? {
        return Err(Fail::new("nothing was recorded").into());
    }
    for (m, _) in &edited {
        table::update_sum(&c, &env.table, m.version, &m.sha256, &m.text).await?;
        p.done(format!("recorded the new checksum of {}", m.file_name()));
    }
    Ok(edited.len())
}
