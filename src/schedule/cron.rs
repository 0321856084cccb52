//! The managed block in a crontab, and `/etc/cron.d` files.
//!
//! pgbox owns only the lines between its two marker lines for one project; every
//! other byte of the crontab, other projects' blocks included, is written back as
//! it was read. Installing twice replaces the block in place.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use super::Unrepresentable;

pub fn begin_marker(project: &str) -> String {
    format!("# >>> pgbox schedule: {project} >>> (managed by pgbox; edit with `pgbox schedule`)")
}

pub fn end_marker(project: &str) -> String {
    format!("# <<< pgbox schedule: {project} <<<")
}

/// Escape `%`, which cron turns into a newline in the command part.
pub fn escape_percent(s: &str) -> String {
    s.replace('%', "\\%")
}

/// One word for `/bin/sh`, which runs cron's command: as is when plain, otherwise
/// in single quotes with each `'` written as `'\\''`. `%` is left to [`block`].
pub fn sh_quote(s: &str) -> String {
    if super::plain_word(s) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What one cron line runs, before `%` escaping.
pub struct Job<'a> {
    pub env: &'a [(&'a str, &'a str)],
    pub pgbox: &'a Path,
    pub config: &'a Path,
    /// Arguments after `schedule run` (engine, retention flags), unquoted.
    pub args: &'a [String],
    pub log: &'a Path,
    /// A shell command of the user's, run when the job fails; kept as written.
    pub on_failure: Option<&'a str>,
}

/// The shell command of a cron line: every path and value quoted for `/bin/sh`.
pub fn command(j: &Job<'_>) -> Result<String, Unrepresentable> {
    let mut words = vec!["env".to_string()];
    for (k, v) in j.env {
        words.push(sh_quote(&format!("{k}={v}")));
    }
    let mut raw = vec![
        j.pgbox.display().to_string(),
        "--config".into(),
        j.config.display().to_string(),
        "schedule".into(),
        "run".into(),
    ];
    raw.extend(j.args.iter().cloned());
    for w in &raw {
        super::check(w, "a cron line")?;
        words.push(sh_quote(w));
    }
    let log = j.log.display().to_string();
    super::check(&log, "a cron line")?;
    let mut cmd = format!("{} >> {} 2>&1", words.join(" "), sh_quote(&log));
    if let Some(hook) = j.on_failure {
        super::check(hook, "a cron line")?;
        cmd = format!("{cmd} || {hook}");
    }
    Ok(cmd)
}

/// `text` with this project's block replaced by `block` (None: removed).
/// Everything outside the block is kept byte for byte.
pub fn with_block(text: &str, project: &str, block: Option<&str>) -> String {
    let (begin, end) = (begin_marker(project), end_marker(project));
    let mut out = String::new();
    let mut rest = text;
    let mut placed = false;
    while let Some(b) = rest.find(&begin) {
        let line_start = rest[..b].rfind('\n').map_or(0, |i| i + 1);
        out.push_str(&rest[..line_start]);
        let after = &rest[b..];
        let stop = match after.find(&end) {
            Some(e) => {
                let e = e + end.len();
                after[e..].find('\n').map_or(after.len(), |n| e + n + 1)
            }
            None => after.len(),
        };
        if let (Some(blk), false) = (block, placed) {
            out.push_str(blk);
            placed = true;
        }
        rest = &after[stop..];
    }
    out.push_str(rest);
    if let (Some(blk), false) = (block, placed) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(blk);
    }
    out
}

/// The block for one project: markers around one cron line.
pub fn block(project: &str, cron_expr: &str, command: &str) -> String {
    format!(
        "{}\n{cron_expr} {}\n{}\n",
        begin_marker(project),
        escape_percent(command),
        end_marker(project)
    )
}

/// Projects with a block in `text`, with their cron lines.
pub fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some(rest) = l.strip_prefix("# >>> pgbox schedule: ") {
            let project = rest.split(" >>>").next().unwrap_or_default().to_string();
            let line = lines.next().unwrap_or_default().to_string();
            out.push((project, line));
        }
    }
    out
}

/// Why this user's crontab could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CrontabError {
    /// No `crontab` program: cron is not installed here.
    #[error(
        "cannot run `crontab`: install cron (e.g. `apt-get install cron`) or use `--using systemd`"
    )]
    NotInstalled(#[source] std::io::Error),
    #[error("cannot run `crontab`")]
    CannotRun(#[source] std::io::Error),
    /// `crontab -l` failed for a reason other than "no crontab" (its stderr).
    #[error("`crontab -l` failed: {0}")]
    Failed(String),
}

/// The user's crontab (`crontab -l`); empty when there is none.
pub fn read_crontab() -> Result<String, CrontabError> {
    let out = match Command::new("crontab")
        .arg("-l")
        .env("LC_ALL", "C")
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CrontabError::NotInstalled(e))
        }
        Err(e) => return Err(CrontabError::CannotRun(e)),
    };
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if only_no_crontab(&err) {
        Ok(String::new())
    } else {
        Err(CrontabError::Failed(err.trim().to_string()))
    }
}

/// The user's crontab for `list` and `remove`, which look for pgbox's blocks in it:
/// `None` on a host without cron (there is nothing of pgbox's to find), an error when
/// `crontab -l` fails (a block might be there unseen).
pub fn read_crontab_if_installed() -> Result<Option<String>, CrontabError> {
    match read_crontab() {
        Ok(tab) => Ok(Some(tab)),
        Err(CrontabError::NotInstalled(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `crontab -l` failed only because this user has no crontab yet.
///
/// This is the one place pgbox reads a tool's message text, because crontab gives
/// no other signal: Debian's cron (vixie), cronie and BSD cron all exit 1 both for
/// "no crontab for USER" and for real failures (a spool it cannot open, cron.deny),
/// and tell them apart only on stderr. The non-text alternative, looking for the
/// user's spool file, is not portable: its folder differs (`/var/spool/cron/crontabs`
/// on Debian, `/var/spool/cron` on Red Hat, `/var/cron/tabs` on BSD), and on Debian
/// it is mode 1730 so a user who is not root cannot even look. So this matches the
/// phrase all three print, with `LC_ALL=C` set on the call so it stays in English.
fn only_no_crontab(stderr: &str) -> bool {
    stderr.contains("no crontab")
}

/// The `/etc/cron.d` file of a system-wide install.
pub fn system_file(project: &str) -> PathBuf {
    PathBuf::from(format!("/etc/cron.d/pgbox-{project}"))
}

/// Replace the user's crontab with `text` (`crontab -`).
pub fn write_crontab(text: &str) -> anyhow::Result<()> {
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `crontab`")?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "`crontab -` refused the new crontab: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOREIGN: &str = "# my jobs\nMAILTO=me@example.com\n0 5 * * * date +\\%F >> /tmp/d.log\n";

    #[test]
    fn install_twice_keeps_one_block_and_foreign_lines() {
        let b = block(
            "shop",
            "0 2 * * *",
            "/usr/bin/pgbox --config /p/pgbox.toml schedule run",
        );
        let once = with_block(FOREIGN, "shop", Some(&b));
        let twice = with_block(&once, "shop", Some(&b));
        assert_eq!(once, twice);
        assert!(once.starts_with(FOREIGN));
        assert_eq!(twice.matches(&begin_marker("shop")).count(), 1);
        let other = block("blog", "30 3 * * *", "/usr/bin/pgbox run");
        let both = with_block(&twice, "blog", Some(&other));
        let removed = with_block(&both, "shop", None);
        assert_eq!(removed, format!("{FOREIGN}{other}"));
        assert_eq!(with_block(&removed, "blog", None), FOREIGN);
    }

    #[test]
    fn percent_is_escaped_and_blocks_are_listed() {
        let b = block(
            "p",
            "0 2 * * *",
            "/x/pgbox --config /my%dir/pgbox.toml schedule run",
        );
        assert!(b.contains("/my\\%dir/"));
        assert_eq!(
            blocks(&b),
            vec![(
                "p".to_string(),
                "0 2 * * * /x/pgbox --config /my\\%dir/pgbox.toml schedule run".to_string()
            )]
        );
    }

    #[test]
    fn only_a_missing_crontab_reads_as_empty() {
        for stderr in ["no crontab for root\n", "crontab: no crontab for me\n"] {
            assert!(only_no_crontab(stderr), "{stderr}");
        }
        for stderr in [
            "crontab: cannot open /var/spool/cron/crontabs: Permission denied\n",
            "You (me) are not allowed to use this program (crontab)\n",
            "",
        ] {
            assert!(!only_no_crontab(stderr), "{stderr}");
        }
    }

    #[test]
    fn every_word_is_quoted_for_sh() {
        let args = ["--engine".to_string(), "my engine".to_string()];
        let c = command(&Job {
            env: &[
                ("PATH", "/usr/bin:/bin"),
                ("DOCKER_HOST", "unix:///run/a b.sock"),
            ],
            pgbox: Path::new("/opt/my tools/pgbox"),
            config: Path::new("/home/me/it's 100%/pgbox.toml"),
            args: &args,
            log: Path::new("/home/me/it's 100%/backups/pgbox-schedule.log"),
            on_failure: None,
        })
        .unwrap();
        assert_eq!(
            c,
            "env PATH=/usr/bin:/bin 'DOCKER_HOST=unix:///run/a b.sock' '/opt/my tools/pgbox' \
             --config '/home/me/it'\\''s 100%/pgbox.toml' schedule run --engine 'my engine' \
             >> '/home/me/it'\\''s 100%/backups/pgbox-schedule.log' 2>&1"
        );
        assert!(block("p", "0 2 * * *", &c).contains("'/home/me/it'\\''s 100\\%/pgbox.toml'"));
        let bad = command(&Job {
            env: &[],
            pgbox: Path::new("/x/pgbox"),
            config: Path::new("/a\nb/pgbox.toml"),
            args: &[],
            log: Path::new("/l"),
            on_failure: None,
        });
        assert!(bad.unwrap_err().to_string().contains("newline"));
    }
}
