//! `backup prune --remote` for point-in-time recovery, as `wal_retention` does it
//! locally: base backups by the remote policy (never the newest), the WAL from
//! the oldest kept base backup's start segment on.

use object_store::path::Path as Key;
use object_store::ObjectStoreExt;

use super::{list, stored_name, Listing, RemoteBase};
use crate::backup::{base, wal};
use crate::config::Settings;
use crate::printer::Printer;
use crate::remote::Remote;

/// What remote retention would delete: base backups (by name) and WAL files.
#[derive(Debug, Default)]
pub struct Doomed {
    pub bases: Vec<RemoteBase>,
    pub wal: Vec<String>,
}

/// Remote retention for point-in-time recovery, as `wal_retention::plan_pitr` does
/// it locally: base backups by `policy` (all were read back, so the newest is the
/// newest verified one and always stays), WAL segments from the oldest kept base
/// backup's start segment on kept; history files always kept.
pub fn plan(l: &Listing, policy: crate::backup::policy::Policy) -> Doomed {
    use crate::backup::policy::{plan, Item};
    let mut d = Doomed::default();
    let mut bases = l.bases.clone();
    bases.sort_by_key(|b| std::cmp::Reverse(b.meta.finished_at));
    let items: Vec<Item> = bases
        .iter()
        .map(|b| Item {
            created_at: b.meta.finished_at,
            verified: true,
        })
        .collect();
    let keep = plan(&items, policy);
    let mut oldest: Option<u64> = None;
    for (b, k) in bases.into_iter().zip(keep) {
        if k {
            let start = wal::parse_name(&b.meta.start_wal, b.meta.wal_segment_size).map(|(_, n)| n);
            oldest = match (oldest, start) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        } else {
            d.bases.push(b);
        }
    }
    let (Some(oldest), Some(newest)) = (oldest, l.bases.last()) else {
        return d;
    };
    let seg = newest.meta.wal_segment_size;
    for f in l.wal.keys() {
        let stem = f.trim_end_matches(".zst");
        if wal::parse_name(stem, seg).is_some_and(|(_, n)| n < oldest) {
            d.wal.push(f.clone());
        }
    }
    d
}

/// `backup prune --remote` for base backups and WAL (after a confirmation unless
/// `yes`); false when the user declined. A base backup's description goes first
/// (it stops counting), then its files; then the WAL only it needed.
pub async fn prune(
    r: &Remote,
    s: &Settings,
    policy: crate::backup::policy::Policy,
    yes: bool,
    dry_run: bool,
    p: &Printer,
) -> anyhow::Result<bool> {
    let l = list(r, &s.project).await?;
    let d = plan(&l, policy);
    if d.bases.is_empty() && d.wal.is_empty() {
        p.info(format!(
            "nothing to prune in `{}`: every base backup is kept, and the WAL they need",
            r.cfg.url
        ));
        return Ok(true);
    }
    for b in &d.bases {
        p.info(format!(
            "would delete base backup `{}` ({})",
            r.url_of(&format!("base/{}", b.name)),
            b.meta.finished_at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    if !d.wal.is_empty() {
        p.info(format!(
            "would delete {} WAL segment(s) no kept base backup needs",
            d.wal.len()
        ));
    }
    if dry_run {
        return Ok(true);
    }
    let n = d.bases.len();
    if !p.confirm(
        format!(
            "Delete {n} remote base backup(s) and {} WAL segment(s)?",
            d.wal.len()
        ),
        yes,
        "pruning deletes remote base backups and WAL",
        "pass `--yes` to confirm without a terminal, or `--dry-run` to only look",
    )? {
        p.info("nothing deleted");
        return Ok(false);
    }
    let del = |k: Key| async move {
        match r.store.delete(&k).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(r.fail("deleting from", e)),
        }
    };
    for b in &d.bases {
        del(r.key(&format!("base/{}/{}", b.name, base::META))).await?;
        for f in &b.files {
            let obj = stored_name(&f.file, &b.encrypted_to);
            del(r.key(&format!("base/{}/{obj}", b.name))).await?;
        }
    }
    for f in &d.wal {
        let obj = stored_name(f, &l.wal[f].encrypted_to);
        let key = r.key(&format!("wal/{obj}"));
        del(Key::from(format!("{key}.json"))).await?;
        del(key).await?;
    }
    p.done(format!(
        "deleted {n} base backup(s) and {} WAL segment(s) from `{}`",
        d.wal.len(),
        r.cfg.url
    ));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::super::{FileSums, RemoteWal};
    use super::*;
    use crate::backup::base::BaseMeta;
    use crate::backup::policy::Policy;
    use crate::digest::Sum;
    use chrono::Utc;

    const S: u64 = wal::DEFAULT_SEGMENT_SIZE;

    fn sums(file: &str) -> FileSums {
        FileSums {
            file: file.into(),
            plain: Sum::default(),
            stored: Sum::default(),
        }
    }

    fn base_at(day: u32, start: u64) -> RemoteBase {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, day)
            .unwrap()
            .and_hms_opt(3, 0, 0)
            .unwrap()
            .and_utc();
        RemoteBase {
            name: format!("p-base-{day}"),
            meta: BaseMeta {
                project: "p".into(),
                pg_major: 15,
                started_at: at,
                finished_at: at,
                start_lsn: format!("0/{:X}", start * S),
                end_lsn: format!("0/{:X}", start * S + 0x100),
                timeline: 1,
                start_wal: wal::file_name(1, start, S),
                end_wal: wal::file_name(1, start, S),
                wal_segment_size: S,
                bytes: 1,
                sha256: String::new(),
                verified: true,
            },
            files: vec![sums(base::TAR)],
            encrypted_to: Vec::new(),
            shipped_at: at,
        }
    }

    fn listing() -> Listing {
        let mut l = Listing {
            bases: vec![base_at(1, 2), base_at(10, 5), base_at(20, 8)],
            ..Listing::default()
        };
        let mut add = |f: String| {
            l.wal.insert(
                f.clone(),
                RemoteWal {
                    sums: sums(&f),
                    archived_at: Utc::now(),
                    sha256_line: None,
                    encrypted_to: Vec::new(),
                },
            );
        };
        for n in 2..=9 {
            add(format!("{}.zst", wal::file_name(1, n, S)));
        }
        add("00000002.history.zst".into());
        l
    }

    #[test]
    fn remote_retention_keeps_the_wal_of_the_oldest_kept_base_backup_on() {
        let keep_one = Policy {
            keep_last: 1,
            daily: 0,
            weekly: 0,
            monthly: 0,
        };
        let d = plan(&listing(), keep_one);
        let names: Vec<&str> = d.bases.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["p-base-10", "p-base-1"]);
        let want: Vec<String> = (2..8)
            .map(|n| format!("{}.zst", wal::file_name(1, n, S)))
            .collect();
        assert_eq!(
            d.wal, want,
            "segments before the kept base's start; no history"
        );

        // A policy that keeps nothing still keeps the newest base backup and its WAL.
        let none = Policy {
            keep_last: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
        };
        let d = plan(&listing(), none);
        assert!(
            !d.bases.iter().any(|b| b.name == "p-base-20"),
            "the newest base backup stays"
        );
        assert!(!d
            .wal
            .iter()
            .any(|f| f.starts_with(&wal::file_name(1, 8, S))));

        // Two kept: WAL from the older one's start on.
        let two = Policy {
            keep_last: 2,
            ..none
        };
        let d = plan(&listing(), two);
        assert_eq!(d.bases.len(), 1);
        assert_eq!(d.wal.len(), 3, "{:?}", d.wal);
    }
}
