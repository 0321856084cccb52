//! Restoring a globals backup (`backup --all`): roles and tablespaces, applied to
//! the whole server with psql after a confirmation. Roles that already exist are
//! reported by psql and expected; any other error, or a failing psql, fails it.

use std::path::Path;

use crate::backup::{load, transfer, Detected};
use crate::config::Settings;
use crate::engine::{Engine, ExecSpec};
use crate::error::Fail;
use crate::printer::Printer;

/// Apply the globals file `path`. Returns false when the user declined.
pub async fn apply(
    engine: &Engine,
    c: &str,
    s: &Settings,
    path: &Path,
    d: Detected,
    yes: bool,
    p: &Printer,
) -> anyhow::Result<bool> {
    if !p.confirm(
        "Apply the roles from this backup to the server?",
        yes,
        "restoring globals changes roles for the whole server",
        "pass `--yes` to confirm without a terminal",
    )? {
        return Ok(false);
    }
    let dir = format!(
        "{}{}-{}",
        load::RESTORE_DIR_PREFIX,
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        std::process::id()
    );
    let guard = {
        let (engine, c, s, dir) = (engine.clone(), c.to_string(), s.clone(), dir.clone());
        crate::cancel::Guard::future(format!("`{dir}` in the container"), async move {
            let _ = load::remove_restore_leftovers(&engine, &c, &s, Some(&dir), None).await;
        })
    };
    let out = async {
        let remote = transfer::upload_to(engine, c, path, d, &dir, p).await?;
        let cmd = ["psql", "--no-psqlrc", "-q", "-U", &s.user, "-d", "postgres"];
        let mut cmd: Vec<String> = cmd.map(String::from).to_vec();
        cmd.extend(["-f".to_string(), remote.path.clone()]);
        let spec = ExecSpec {
            cmd,
            user: Some("postgres".into()),
            env: Vec::new(),
        };
        anyhow::Ok(engine.exec_capture(c, &spec).await?)
    }
    .await;
    guard.undo().await;
    let out = out?;
    check(out.code, &String::from_utf8_lossy(&out.stderr))?;
    p.done("applied the roles and tablespaces from the globals backup");
    Ok(true)
}

/// psql's verdict: its exit code must be 0 and its messages may only say that
/// something already exists.
fn check(code: i64, stderr: &str) -> Result<(), Fail> {
    let real: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            (l.contains("ERROR") || l.contains("FATAL") || l.contains("psql:"))
                && !l.contains("already exists")
        })
        .collect();
    if code == 0 && real.is_empty() {
        return Ok(());
    }
    let shown = if real.is_empty() {
        stderr.lines().rev().take(5).collect::<Vec<_>>()
    } else {
        real
    };
    Err(Fail::new(format!(
        "some globals could not be applied (psql exit {code}):\n{}",
        shown.join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn psql_failing_fails_even_without_an_error_line() {
        check(0, "psql:/tmp/x:3: ERROR:  role \"app\" already exists\n").unwrap();
        let e = check(2, "could not connect\n").unwrap_err().to_string();
        assert!(
            e.contains("psql exit 2") && e.contains("could not connect"),
            "{e}"
        );
        let e = check(0, "psql:/tmp/x:5: ERROR:  syntax error at or near \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("syntax error"), "{e}");
    }
}
