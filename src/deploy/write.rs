//! Writing the generated files: all or nothing, and never over a changed file
//! without `force`.
//!
//! The plan compares every file with what is on disk before anything is written,
//! so a refused (changed) file or an unreadable one stops the run with the folder
//! untouched. Each environment gets its own password file, created once and never
//! printed; a `.gitignore` keeps it and the data out of version control. `k8s`
//! goes through the same plan; its password lives in the Secret's own file
//! (`secret-app.yaml`, mode 0600), written once, after its `.gitignore` line.

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
    /// k8s: the backup the restore Job loads (a file or `latest`; default the newest).
    pub backup: Option<String>,
    /// metrics: the engine address the service passes as `--engine`.
    pub engine: Option<String>,
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
    let k8s = a.what == GenerateKind::K8s;
    if a.backup.is_some() && !k8s {
        return Err(Fail::new(format!(
            "`--backup` applies to `generate k8s`, not `{what}`"
        ))
        .code(EXIT_USAGE)
        .into());
    }
    let out_dir = a.output.clone().unwrap_or_else(|| {
        let folder = if k8s {
            format!("k8s-{env}")
        } else {
            env.to_string()
        };
        s.project_dir.join("deploy").join(folder)
    });
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(Fail::new(format!(
            "`{}` is not a folder; nothing was written",
            out_dir.display()
        ))
        .hint("pass `-o` a folder (it is created when missing)")
        .code(EXIT_USAGE)
        .into());
    }
    let command = format!(
        "pgbox generate {what} --env {env}{}",
        if a.publish { " --publish" } else { "" }
    );
    let mut k8s_secret = None;
    let files = if k8s {
        let out = super::k8s::files(s, a.env, a.backup.as_deref(), &command)?;
        for w in &out.warnings {
            p.warn(w);
        }
        k8s_secret = Some(out.secret);
        out.files
    } else if a.what == GenerateKind::Metrics {
        vec![metrics_unit(s, a.engine.as_deref())?]
    } else {
        files(s, a.what, a.env, a.publish, &out_dir, &command)?
    };

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
    if let Some(secret) = k8s_secret {
        // The .gitignore and the Secret before the rest: the password never sits
        // in the folder unignored.
        crate::fsutil::private_dir(&out_dir, 0o755)?;
        let mut written = usize::from(ensure_ignored(&out_dir, super::k8s::GITIGNORE, p)?);
        let path = out_dir.join(&secret.path);
        if path.exists() {
            p.detail(format!(
                "kept `{}` (the password is never regenerated)",
                path.display()
            ));
        } else {
            crate::fsutil::write_atomic(&path, &secret.body, secret.mode)?;
            p.info(format!(
                "generated a new {env} password in `{}` (mode 600, git-ignored)",
                path.display()
            ));
            written += 1;
        }
        let (same, w) = apply(&plan, p)?;
        p.done(format!(
            "k8s files (CloudNativePG {}.x) for `{}` ({env}) in `{}`: {} written, {same} unchanged",
            super::k8s::CNPG_RELEASE,
            s.project,
            out_dir.display(),
            written + w
        ));
        return Ok(out_dir);
    }
    let (same, mut written) = apply(&plan, p)?;
    if a.what == GenerateKind::Metrics {
        let name = crate::observe::service::unit_name(&s.project);
        p.done(format!(
            "metrics service for `{}` in `{}`: {written} written, {same} unchanged",
            s.project,
            out_dir.display()
        ));
        p.info(format!(
            "install: copy `{name}` to ~/.config/systemd/user/, then `systemctl --user daemon-reload && systemctl --user enable --now {name}` (or write it there with `-o ~/.config/systemd/user`)"
        ));
        return Ok(out_dir);
    }
    if a.what != GenerateKind::Containerfile {
        if ensure_password(&out_dir)? {
            p.info(format!(
                "generated a new {env} password in `{}` (mode 600)",
                secret_path(&out_dir).display()
            ));
        }
        if s.pooler.enabled && ensure_pooler_secret(s, &out_dir)? {
            p.info(format!(
                "generated the pooler role's password in `{}` and its one-time setup in `{}` (mode 600)",
                out_dir.join("secrets/pooler/auth").display(),
                out_dir.join("secrets/pooler/setup.sql").display()
            ));
        }
        if crate::cluster::enabled(s) {
            for name in crate::cluster::deploy::secret_names() {
                ensure_secret_file(&secret_path(&out_dir).with_file_name(name))?;
            }
        }
        if crate::fsutil::gitignore_once(
            &out_dir,
            "# Never commit the passwords or the data.\nsecrets/\ndata/\n",
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

/// The `pgbox metrics` service of this project on this host, on its default
/// loopback address: this binary and this pgbox.toml by absolute path, the engine
/// address as an argument (a service has no shell environment).
fn metrics_unit(s: &Settings, engine: Option<&str>) -> anyhow::Result<GenFile> {
    use crate::observe::service;
    let pgbox = std::env::current_exe()?;
    let body = service::render(&service::UnitSpec {
        project: &s.project,
        pgbox: &pgbox,
        config: &s.config_path,
        engine,
        listen: service::DEFAULT_LISTEN,
        allow_remote: false,
    });
    Ok(GenFile {
        path: service::unit_name(&s.project),
        body: body.into_bytes(),
        mode: 0o644,
    })
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

/// The pooler's auth file (`"pgbox_pooler" "<password>"`) and `setup.sql`, which
/// creates its role and lookup function with the password as a SCRAM verifier (the
/// password itself is in no SQL): created once, mode 600. True if created now.
fn ensure_pooler_secret(s: &Settings, out_dir: &Path) -> anyhow::Result<bool> {
    let dir = out_dir.join("secrets/pooler");
    let (auth, setup) = (dir.join("auth"), dir.join("setup.sql"));
    if auth.exists() && setup.exists() {
        return Ok(false);
    }
    crate::fsutil::private_dir(&out_dir.join("secrets"), 0o700)?;
    crate::fsutil::private_dir(&dir, 0o700)?;
    let user = crate::pooler::AUTH_USER;
    let password = match std::fs::read_to_string(&auth) {
        Ok(text) => text
            .trim_end()
            .strip_prefix(&format!("\"{user}\" \""))
            .and_then(|r| r.strip_suffix('"'))
            .map(str::to_string)
            .ok_or_else(|| {
                Fail::new(format!(
                    "`{}` is not `\"{user}\" \"PASSWORD\"`",
                    auth.display()
                ))
            })?,
        Err(_) => {
            let pw = crate::secrets::generate_password();
            crate::fsutil::write_atomic(&auth, format!("\"{user}\" \"{pw}\"\n").as_bytes(), 0o600)?;
            pw
        }
    };
    let sql = crate::pooler::auth::sql(s, &crate::scram::verifier(&password));
    crate::fsutil::write_atomic(&setup, sql.as_bytes(), 0o600)?;
    Ok(true)
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

/// Make sure `.gitignore` in `dir` ignores every line of `text`: written when
/// missing, the missing lines appended to the user's own. True if it changed.
fn ensure_ignored(dir: &Path, text: &str, p: &Printer) -> anyhow::Result<bool> {
    let path = dir.join(".gitignore");
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)?;
            return Ok(true);
        }
        Err(e) => return Err(Fail::new(format!("cannot read `{}`: {e}", path.display())).into()),
    };
    let have: Vec<&str> = old.lines().map(str::trim).collect();
    let missing: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty() && !have.contains(l))
        .collect();
    if missing.is_empty() {
        return Ok(false);
    }
    let mut new = old.clone();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    for l in &missing {
        new.push_str(l);
        new.push('\n');
    }
    crate::fsutil::write_atomic(&path, new.as_bytes(), 0o644)?;
    p.info(format!(
        "added {} to `{}`",
        missing.join(", "),
        path.display()
    ));
    Ok(true)
}
