//! Writing the generated files: all or nothing, and never over a changed file
//! without `force`.
//!
//! The plan compares every file with what is on disk before anything is written,
//! so a refused (changed) file or an unreadable one stops the run with the folder
//! untouched. Each environment gets its own password file, created once and never
//! printed; a `.gitignore` keeps it and the data out of version control.

use std::path::{Path, PathBuf};

use super::{files, secret_path, DeployEnv, GenFile, GenerateKind};
use crate::config::Settings;
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;

/// What `pgbox generate` was asked for.
pub struct GenerateOptions {
    pub what: GenerateKind,
    pub env: DeployEnv,
    pub publish: bool,
    /// The folder to write into; default `deploy/ENV` in the project folder.
    pub output: Option<PathBuf>,
    /// Overwrite files that differ from what pgbox would write.
    pub force: bool,
}

enum Change {
    New,
    Same,
    Changed { added: usize, removed: usize },
}

fn diff(old: &[u8], new: &[u8]) -> Change {
    if old == new {
        return Change::Same;
    }
    let (o, n) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
    let d = similar::TextDiff::from_lines(o.as_ref(), n.as_ref());
    let (mut added, mut removed) = (0, 0);
    for c in d.iter_all_changes() {
        match c.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    Change::Changed { added, removed }
}

/// Render and write the files; returns the folder they are in.
pub fn write(s: &Settings, a: GenerateOptions, p: &Printer) -> anyhow::Result<PathBuf> {
    let env = super::env_name(a.env);
    let what = clap::ValueEnum::to_possible_value(&a.what)
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let out_dir = a
        .output
        .clone()
        .unwrap_or_else(|| s.project_dir.join("deploy").join(env));
    let command = format!(
        "pgbox generate {what} --env {env}{}",
        if a.publish { " --publish" } else { "" }
    );
    let files = files(s, a.what, a.env, a.publish, &out_dir, &command)?;

    let mut plan = Vec::new();
    let mut refused = Vec::new();
    for f in files {
        let path = out_dir.join(&f.path);
        let change = match std::fs::read(&path) {
            Ok(old) => diff(&old, &f.body),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Change::New,
            Err(e) => {
                return Err(Fail::new(format!(
                    "cannot read `{}` to compare it with what pgbox would write: {e}; nothing was written",
                    path.display()
                ))
                .into())
            }
        };
        if let (Change::Changed { added, removed }, false) = (&change, a.force) {
            refused.push(format!("  {} (+{added} -{removed} lines)", f.path));
        }
        plan.push((path, f, change));
    }
    if !refused.is_empty() {
        return Err(Fail::new(format!(
            "these files in `{}` differ from what pgbox would write; nothing was written:\n{}",
            out_dir.display(),
            refused.join("\n")
        ))
        .hint("pass `--force` to overwrite them (commit or back them up first if you edited them)")
        .code(EXIT_USAGE)
        .into());
    }
    let (same, mut written) = apply(&plan, p)?;
    if a.what != GenerateKind::Containerfile {
        if ensure_password(&out_dir)? {
            p.info(format!(
                "generated a new {env} password in `{}` (mode 600)",
                secret_path(&out_dir).display()
            ));
        }
        if crate::cluster::enabled(s) {
            for name in crate::cluster::deploy::secret_names() {
                ensure_secret_file(&secret_path(&out_dir).with_file_name(name))?;
            }
        }
        if crate::fsutil::gitignore_once(
            &out_dir,
            "# Never commit the password or the data.\nsecrets/postgres_password\ndata/\n",
        )? {
            written += 1;
        }
    }
    p.done(format!(
        "{what} files for `{}` ({env}) in `{}`: {written} written, {same} unchanged",
        s.project,
        out_dir.display()
    ));
    Ok(out_dir)
}

/// Write the planned files that are new or changed: (unchanged, written).
fn apply(plan: &[(PathBuf, GenFile, Change)], p: &Printer) -> anyhow::Result<(usize, usize)> {
    let (mut same, mut written) = (0, 0);
    for (path, f, change) in plan {
        match change {
            Change::Same => {
                same += 1;
                continue;
            }
            Change::New => p.detail(format!("wrote `{}`", path.display())),
            Change::Changed { added, removed } => {
                p.info(format!("updated `{}` (+{added} -{removed} lines)", f.path))
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::fsutil::write_atomic(path, &f.body, f.mode)?;
        written += 1;
    }
    Ok((same, written))
}

/// The environment's password file, created once (mode 600). True if created now.
fn ensure_password(out_dir: &Path) -> anyhow::Result<bool> {
    ensure_secret_file(&secret_path(out_dir))
}

/// A generated secret file, created once (mode 600 in a 700 folder). True if created now.
fn ensure_secret_file(secret: &Path) -> anyhow::Result<bool> {
    if secret.exists() {
        return Ok(false);
    }
    let dir = secret.parent().expect("secrets folder");
    crate::fsutil::private_dir(dir, 0o700)?;
    crate::fsutil::write_atomic(
        secret,
        format!("{}\n", crate::secrets::generate_password()).as_bytes(),
        0o600,
    )?;
    Ok(true)
}
