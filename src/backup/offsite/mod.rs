//! The off-site side of `backup list`, `backup verify`, `backup prune` and
//! `restore`: each resolves the store from pgbox.toml and calls the store module
//! that owns the work (`remote::listing`, `remote::fetch`, [`retention`]), handing
//! a downloaded, checked backup to the same verify and restore as local backups.

pub mod pitr;
pub mod retention;

use std::path::Path;

use chrono::Utc;

use crate::backup::listing::Row;
use crate::backup::restore::RestoreOptions;
use crate::config::Settings;
use crate::crypt::Identities;
use crate::engine::Engine;
use crate::printer::Printer;
use crate::remote::listing::{self, RemoteEntry};
use crate::remote::{fetch, Remote};

/// The remote backups as `backup list` rows (`file` is the object's URL).
pub async fn rows(s: &Settings) -> anyhow::Result<(String, Vec<Row>)> {
    let r = Remote::connect(s)?;
    let now = Utc::now();
    let rows = listing::list(&r, &s.project)
        .await?
        .into_iter()
        .map(|e: RemoteEntry| Row {
            created_at: e
                .manifest
                .created_at
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            database: e.manifest.database.clone(),
            kind: e.manifest.kind.clone(),
            bytes: e.size,
            age: crate::printer::age((now - e.manifest.created_at).num_seconds()),
            verified: e.manifest.verified_at.is_some(),
            file: r.url_of(&e.name),
        })
        .collect();
    Ok((r.cfg.url.clone(), rows))
}

/// `backup verify --remote NAME|latest [--deep --identity FILE]`.
pub async fn verify(
    s: &Settings,
    which: &str,
    deep: bool,
    identity: Option<&Path>,
    engine: Option<&str>,
    p: &Printer,
) -> anyhow::Result<()> {
    let r = Remote::connect(s)?;
    let ids = identity.map(Identities::load).transpose()?;
    let e = listing::resolve(&r, &s.project, which).await?;
    fetch::check_stored(&r, &e).await?;
    p.done(format!(
        "`{}` matches its manifest ({} bytes, sha256 {}{})",
        r.url_of(&e.name),
        fetch::stored_sum(&e).bytes,
        &fetch::stored_sum(&e).sha256[..16],
        if e.manifest.encrypted_to.is_empty() {
            ""
        } else {
            ", encrypted: checked without the key"
        }
    ));
    if !deep {
        return Ok(());
    }
    let _lock = crate::lock::project(&s.state_dir(), &s.project, "backup verify")?;
    let got = fetch::fetch(&r, &e, ids.as_ref(), &s.backup_dir, p).await?;
    p.done(format!(
        "decrypted and matched the content's sha256 {}",
        &e.manifest.sha256[..16]
    ));
    let result = async {
        let engine = Engine::connect(engine).await?;
        let c = crate::container::ctl::ready(&engine, s).await?;
        crate::backup::verify::verify(&engine, &c, s, &got.path, true, p).await
    }
    .await;
    got.guard.undo().await;
    result
}

/// `restore --from-remote NAME|latest [--identity FILE]`: download, decrypt and
/// check into a private folder, then the usual restore of that file.
pub async fn restore(
    o: &RestoreOptions,
    which: &str,
    identity: Option<&Path>,
    s: &Settings,
    p: &Printer,
) -> anyhow::Result<bool> {
    let r = Remote::connect(s)?;
    let ids = identity.map(Identities::load).transpose()?;
    let e = listing::resolve(&r, &s.project, which).await?;
    std::fs::create_dir_all(&s.backup_dir)?;
    let got = fetch::fetch(&r, &e, ids.as_ref(), &s.backup_dir, p).await?;
    p.info(format!(
        "downloaded `{}` and matched its checksums",
        r.url_of(&e.name)
    ));
    let o = RestoreOptions {
        file: got.path.display().to_string(),
        ..o.clone()
    };
    let result = crate::backup::restore::run(&o, s, p).await;
    got.guard.undo().await;
    result
}
