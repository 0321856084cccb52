//! Where a point-in-time restore stops and which base backup it starts from,
//! checked against the archive before anything is touched.
//!
//! Each base backup reaches from its end to the last segment of its WAL chain
//! that the archive holds without a gap ([`Reach`]); a segment's time is its
//! file's modification time (when it was archived). A target is recoverable when
//! some base backup reaches it; the newest such base backup is chosen. Otherwise
//! the refusal says why (before the oldest base backup, after the newest archived
//! WAL, or in a gap, naming the missing segment) and prints the ranges that can
//! be recovered.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::backup::{base, wal};
use crate::error::{Fail, EXIT_USAGE};

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Time(DateTime<Utc>),
    Lsn(u64),
    Latest,
}

/// `--to-time`: `2026-11-27 14:02:00` (UTC), with optional fractions of a second,
/// a `T`, and a zone as `Z`, `UTC` or an offset (`+01:00`, `+0100`, `+01`).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, Fail> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    // `2026-11-27T14:02:00`: the date and the time joined by a `T`.
    let t2 = match t.get(10..11) {
        Some("T") | Some("t") => format!("{} {}", &t[..10], &t[11..]),
        _ => t.to_string(),
    };
    let bare = t2
        .strip_suffix(" UTC")
        .or_else(|| t2.strip_suffix("UTC"))
        .or_else(|| t2.strip_suffix('Z'))
        .unwrap_or(&t2)
        .trim();
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(bare, f) {
            return Ok(n.and_utc());
        }
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f %:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f %#z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(&t2, f) {
            return Ok(d.with_timezone(&Utc));
        }
    }
    Err(Fail::new(format!("`{text}` is not a time pgbox reads"))
        .hint("write `2026-11-27 14:02:00` (UTC), or add an offset: `2026-11-27 14:02:00+01:00`")
        .code(EXIT_USAGE))
}

/// `--to-lsn`: `0/3000060`.
pub fn parse_lsn(text: &str) -> Result<u64, Fail> {
    wal::parse_lsn(text.trim()).ok_or_else(|| {
        Fail::new(format!("`{text}` is not an LSN"))
            .hint(
                "write it as PostgreSQL shows it, e.g. `0/3000060` (`select pg_current_wal_lsn()`)",
            )
            .code(EXIT_USAGE)
    })
}

pub fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn lsn_text(l: u64) -> String {
    format!("{:X}/{:X}", l >> 32, l & 0xFFFF_FFFF)
}

pub fn describe(t: &Target) -> String {
    match t {
        Target::Time(t) => t.format("%Y-%m-%d %H:%M:%S%.f UTC").to_string(),
        Target::Lsn(l) => format!("LSN {}", lsn_text(*l)),
        Target::Latest => "the newest archived WAL".to_string(),
    }
}

/// How far one base backup can be recovered with the archive as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// Index into the base backups.
    pub base: usize,
    /// The base backup's end: the earliest consistent point.
    pub from: DateTime<Utc>,
    pub from_lsn: u64,
    /// When the last segment of the unbroken chain was archived.
    pub to: DateTime<Utc>,
    /// That segment's number.
    pub to_seg: u64,
    /// The first segment the chain lacks, when it stops before the newest one.
    pub missing: Option<String>,
}

/// The reach of every base backup whose chain holds at least its own WAL
/// (start to end segment), oldest first.
pub fn reaches(bases: &[(PathBuf, base::BaseMeta)], a: &wal::Archive) -> Vec<Reach> {
    let mut out = Vec::new();
    for (i, (_, m)) in bases.iter().enumerate() {
        let seg = m.wal_segment_size;
        let Some((tli, start)) = wal::parse_name(&m.start_wal, seg) else {
            continue;
        };
        let Some(from_lsn) = wal::parse_lsn(&m.end_lsn) else {
            continue;
        };
        // A base backup the newest timeline's history does not pass through (taken
        // on a timeline that was left behind, after the point it was left) cannot
        // be recovered along it.
        let Some(need) = wal::needed(a, tli, start, seg) else {
            continue;
        };
        let left_behind = wal::newest_timeline(a)
            .and_then(|n| a.histories.get(&n))
            .and_then(|h| h.iter().find(|sw| sw.parent == tli))
            .zip(wal::parse_lsn(&m.start_lsn))
            .is_some_and(|(sw, start_lsn)| start_lsn >= sw.switch_lsn);
        if left_behind {
            continue;
        }
        let mut last = None;
        let mut missing = None;
        for (t, n) in need {
            match a.mtimes.get(&(t, n)) {
                Some(m) => last = Some((n, *m)),
                None if a.segments.get(&t).is_some_and(|s| s.contains(&n)) => {
                    last = Some((n, std::time::SystemTime::UNIX_EPOCH))
                }
                None => {
                    missing = Some(wal::file_name(t, n, seg));
                    break;
                }
            }
        }
        let Some((to_seg, to)) = last else { continue };
        if to_seg < wal::segno(from_lsn, seg) {
            // Not even the backup's own WAL is archived: it is not usable.
            continue;
        }
        out.push(Reach {
            base: i,
            from: m.finished_at,
            from_lsn,
            to: DateTime::<Utc>::from(to).max(m.finished_at),
            to_seg,
            missing,
        });
    }
    out
}

/// The ranges of time that can be recovered, merged, for messages.
pub fn ranges(r: &[Reach]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut v: Vec<_> = r.iter().map(|r| (r.from, r.to)).collect();
    v.sort();
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn range_text(project: &str, r: &[Reach]) -> String {
    let spans: Vec<String> = ranges(r)
        .iter()
        .map(|(a, b)| format!("from {} to {}", stamp(*a), stamp(*b)))
        .collect();
    if spans.is_empty() {
        format!(
            "no base backup of `{project}` has its WAL in the archive, so nothing can be recovered"
        )
    } else {
        format!("`{project}` can be recovered {}", spans.join(" and "))
    }
}

/// The reach to recover from, or the refusal naming why and what can be recovered.
pub fn pick(
    project: &str,
    bases: &[(PathBuf, base::BaseMeta)],
    a: &wal::Archive,
    target: &Target,
) -> Result<Reach, Fail> {
    let r = reaches(bases, a);
    let refuse = |why: String| {
        Fail::new(format!("{why}; {}", range_text(project, &r)))
            .hint("choose a target inside that range; `pgbox backup verify --pitr` checks the archive")
            .code(EXIT_USAGE)
    };
    let label = |x: &Reach| {
        bases[x.base]
            .0
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let gap = |x: &Reach, what: String| {
        refuse(format!(
            "{what} is past a gap in the WAL archive: segment `{}` is missing, so recovery from base backup `{}` stops at {}",
            x.missing.as_deref().unwrap_or("?"),
            label(x),
            stamp(x.to)
        ))
    };
    let Some(first) = r.first() else {
        return Err(refuse("nothing to recover from".into()));
    };
    match target {
        Target::Time(t) => {
            let what = stamp(*t);
            if let Some(x) = r.iter().rev().find(|x| x.from <= *t && *t <= x.to) {
                return Ok(x.clone());
            }
            if *t < r.iter().map(|x| x.from).min().unwrap_or(first.from) {
                return Err(refuse(format!(
                    "{what} is before the oldest base backup ended"
                )));
            }
            match r.iter().rev().find(|x| x.from <= *t) {
                Some(x) if x.missing.is_some() => Err(gap(x, what)),
                _ => Err(refuse(format!(
                    "{what} is after the newest archived WAL segment"
                ))),
            }
        }
        Target::Lsn(l) => {
            let what = format!("LSN {}", lsn_text(*l));
            let seg = |x: &Reach| bases[x.base].1.wal_segment_size;
            let n = |x: &Reach| wal::segno(*l, seg(x));
            if let Some(x) = r
                .iter()
                .rev()
                .find(|x| x.from_lsn <= *l && n(x) <= x.to_seg)
            {
                return Ok(x.clone());
            }
            if r.iter().all(|x| *l < x.from_lsn) {
                return Err(refuse(format!(
                    "{what} is before the oldest base backup ended ({})",
                    lsn_text(first.from_lsn)
                )));
            }
            match r.iter().rev().find(|x| x.from_lsn <= *l) {
                Some(x) if x.missing.is_some() => Err(gap(x, what)),
                _ => Err(refuse(format!(
                    "{what} is after the newest archived WAL segment"
                ))),
            }
        }
        Target::Latest => {
            let newest = r.last().unwrap_or(first);
            match newest.missing {
                None => Ok(newest.clone()),
                Some(_) => Err(gap(newest, "the newest archived WAL".into()).hint(format!(
                    "recover to a time before the gap with `--to-time \"{}\"`, or take a new `pgbox backup --base`",
                    newest.to.format("%Y-%m-%d %H:%M:%S")
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    const S: u64 = wal::DEFAULT_SEGMENT_SIZE;

    fn at(secs: u64) -> DateTime<Utc> {
        DateTime::<Utc>::from(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs))
    }

    fn base(name: &str, start_seg: u64, end_lsn: &str, finished: u64) -> (PathBuf, base::BaseMeta) {
        (
            PathBuf::from(format!("/b/{name}")),
            base::BaseMeta {
                project: "app".into(),
                pg_major: 15,
                started_at: at(finished - 1),
                finished_at: at(finished),
                start_lsn: format!("0/{:X}", start_seg * S + 0x28),
                end_lsn: end_lsn.into(),
                timeline: 1,
                start_wal: wal::file_name(1, start_seg, S),
                end_wal: wal::file_name(1, start_seg, S),
                wal_segment_size: S,
                bytes: 1,
                sha256: String::new(),
                verified: true,
            },
        )
    }

    /// Segments 2..=9 on timeline 1, archived at 10 s per segment, less `gone`.
    fn archive(gone: &[u64]) -> wal::Archive {
        let mut a = wal::Archive::default();
        for n in 2..=9u64 {
            if gone.contains(&n) {
                continue;
            }
            a.segments.entry(1).or_default().insert(n);
            let m = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + n * 10);
            a.mtimes.insert((1, n), m);
            a.newest_mtime = a.newest_mtime.max(Some(m));
        }
        a
    }

    #[test]
    fn a_time_inside_a_reach_picks_the_newest_base_before_it() {
        let bases = vec![
            base("b1", 2, "0/2000100", 21),
            base("b2", 5, "0/5000100", 51),
        ];
        let a = archive(&[]);
        assert_eq!(
            pick("app", &bases, &a, &Target::Time(at(40))).unwrap().base,
            0
        );
        assert_eq!(
            pick("app", &bases, &a, &Target::Time(at(60))).unwrap().base,
            1
        );
        assert_eq!(pick("app", &bases, &a, &Target::Latest).unwrap().base, 1);
        let before = pick("app", &bases, &a, &Target::Time(at(5))).unwrap_err();
        assert!(
            before.to_string().contains("before the oldest base backup"),
            "{before}"
        );
        let after = pick("app", &bases, &a, &Target::Time(at(500))).unwrap_err();
        assert!(
            after.to_string().contains("after the newest archived"),
            "{after}"
        );
    }

    #[test]
    fn a_target_past_a_gap_is_refused_naming_the_missing_segment() {
        // Segment 4 is gone: b1 reaches segment 3 (30 s); b2 starts after the gap.
        let bases = vec![
            base("b1", 2, "0/2000100", 21),
            base("b2", 5, "0/5000100", 51),
        ];
        let a = archive(&[4]);
        let e = pick("app", &bases, &a, &Target::Time(at(45)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("segment `000000010000000000000004` is missing"),
            "{e}"
        );
        assert!(e.contains("`b1`"), "{e}");
        // Both ranges are named.
        assert!(
            e.contains(&format!("from {} to {}", stamp(at(21)), stamp(at(30)))),
            "{e}"
        );
        assert!(e.contains(&format!("and from {}", stamp(at(51)))), "{e}");
        assert_eq!(
            pick("app", &bases, &a, &Target::Time(at(25))).unwrap().base,
            0
        );
        assert_eq!(
            pick("app", &bases, &a, &Target::Time(at(70))).unwrap().base,
            1
        );
        // An LSN in the missing segment is refused too.
        let l = pick("app", &bases, &a, &Target::Lsn(4 * S + 8))
            .unwrap_err()
            .to_string();
        assert!(l.contains("is missing"), "{l}");
        assert_eq!(
            pick("app", &bases, &a, &Target::Lsn(3 * S + 8))
                .unwrap()
                .base,
            0
        );
        // A gap after the newest base: latest is refused, with the time to use.
        let late = pick("app", &bases, &archive(&[7]), &Target::Latest).unwrap_err();
        assert!(
            late.to_string()
                .contains("`000000010000000000000007` is missing"),
            "{late}"
        );
    }

    #[test]
    fn a_base_without_its_own_wal_is_not_usable() {
        let bases = vec![
            base("b1", 2, "0/2000100", 21),
            base("b2", 9, "0/A000100", 95),
        ];
        // Segment 10 (b2's end) is not archived yet.
        let r = reaches(&bases, &archive(&[]));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].base, 0);
        assert_eq!(
            pick("app", &bases, &archive(&[]), &Target::Latest)
                .unwrap()
                .base,
            0
        );
    }

    #[test]
    fn a_base_on_a_timeline_left_behind_is_not_used() {
        // Timeline 2 branched from 1 at segment 4: b2 (segment 6 on timeline 1)
        // lies after the branch, off timeline 2's history.
        let bases = vec![
            base("b1", 2, "0/2000100", 21),
            base("b2", 6, "0/6000100", 61),
        ];
        let mut a = archive(&[]);
        a.histories
            .insert(2, wal::parse_history("1\t0/4000100\tbefore 4\n"));
        for n in 4..=5u64 {
            a.segments.entry(2).or_default().insert(n);
            a.mtimes.insert(
                (2, n),
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_200 + n),
            );
        }
        let r = reaches(&bases, &a);
        assert_eq!(r.iter().map(|r| r.base).collect::<Vec<_>>(), vec![0]);
        assert_eq!(r[0].to_seg, 5);
    }

    #[test]
    fn times_are_utc_unless_a_zone_is_given() {
        let t = |s: &str| parse_time(s).unwrap().to_rfc3339();
        assert_eq!(t("2026-11-27 14:02:00"), "2026-11-27T14:02:00+00:00");
        assert_eq!(t("2026-11-27T14:02:00Z"), "2026-11-27T14:02:00+00:00");
        assert_eq!(t("2026-11-27 14:02:00 UTC"), "2026-11-27T14:02:00+00:00");
        assert_eq!(t("2026-11-27 15:02:00+01:00"), "2026-11-27T14:02:00+00:00");
        assert_eq!(t("2026-11-27 15:02:00+01"), "2026-11-27T14:02:00+00:00");
        assert_eq!(
            t("2026-11-27 14:02:00.250"),
            "2026-11-27T14:02:00.250+00:00"
        );
        assert!(parse_time("yesterday").is_err());
    }
}
