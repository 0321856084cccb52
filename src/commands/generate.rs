//! `pgbox generate`: deployment files to commit, from the same settings and templates.
//!
//! Existing files are never overwritten without `--force`; with it, each rewrite is
//! reported with a line count of what changed. Nothing is written when any file
//! would be refused, so a folder is never left half regenerated. Each environment
//! gets its own password file, created once and never printed.

use crate::cli::{GenerateArgs, GlobalArgs};
use crate::config::Settings;
use crate::deploy;
use crate::deploy::{DeployEnv, GenerateKind};
use crate::error::{Fail, EXIT_USAGE};
use crate::printer::Printer;
use crate::secrets;

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

pub fn run(a: GenerateArgs, g: &GlobalArgs, p: &Printer) -> super::Outcome {
    let s = Settings::load(g.config.as_deref())?;
    let env = match a.env {
        DeployEnv::Dev => "dev",
        DeployEnv::Prod => "prod",
    };
    let what = clap::ValueEnum::to_possible_value(&a.what)
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let out_dir = match &a.output {
        Some(o) => crate::config::absolute(&std::env::current_dir()?, o),
        None => s.project_dir.join("deploy").join(env),
    };
    let command = format!(
        "pgbox generate {what} --env {env}{}",
        if a.publish { " --publish" } else { "" }
    );
    let files = deploy::files(&s, a.what, a.env, a.publish, &out_dir, &command)?;

    let mut plan = Vec::new();
    let mut refused = Vec::new();
    for f in files {
        let path = out_dir.join(&f.path);
        let change = match std::fs::read(&path) {
            Ok(old) => diff(&old, &f.body),
            Err(_) => Change::New,
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
    let (mut same, mut written) = (0, 0);
    for (path, f, change) in &plan {
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
    if a.what != GenerateKind::Containerfile {
        let secret = deploy::secret_path(&out_dir);
        if !secret.exists() {
            let dir = secret.parent().expect("secrets folder");
            crate::fsutil::private_dir(dir, 0o700)?;
            crate::fsutil::write_atomic(
                &secret,
                format!("{}\n", secrets::generate_password()).as_bytes(),
                0o600,
            )?;
            p.info(format!(
                "generated a new {env} password in `{}` (mode 600)",
                secret.display()
            ));
        }
        let ignore = out_dir.join(".gitignore");
        if !ignore.exists() {
            crate::fsutil::write_atomic(
                &ignore,
                b"# Never commit the password or the data.\nsecrets/postgres_password\ndata/\n",
                0o644,
            )?;
            written += 1;
        }
    }
    p.done(format!(
        "{what} files for `{}` ({env}) in `{}`: {written} written, {same} unchanged",
        s.project,
        out_dir.display()
    ));
    p.data(out_dir.display().to_string());
    Ok(0)
}
