//! Which backups a retention policy keeps: keep-last, daily, weekly and monthly.
//!
//! The newest backup of each of the last N days (weeks, months) that have a
//! backup is kept, plus the newest `keep_last`; everything else may go. Two rules
//! override the policy: the newest verified backup is always kept (or the newest
//! backup when none is verified), so retention can never leave nothing good.
//! Days, weeks and months are taken in UTC, like the timestamps in the names.

use chrono::{DateTime, Datelike, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub created_at: DateTime<Utc>,
    pub verified: bool,
}

/// For items sorted newest first, whether each is kept.
pub fn plan(items: &[Item], p: Policy) -> Vec<bool> {
    let mut keep = vec![false; items.len()];
    for k in keep.iter_mut().take(p.keep_last as usize) {
        *k = true;
    }
    let mut bucket = |n: u32, key: &dyn Fn(&DateTime<Utc>) -> (i32, u32)| {
        let mut seen: Option<(i32, u32)> = None;
        let mut count = 0;
        for (i, it) in items.iter().enumerate() {
            if count >= n {
                break;
            }
            let k = key(&it.created_at);
            if seen != Some(k) {
                seen = Some(k);
                count += 1;
                keep[i] = true;
            }
        }
    };
    bucket(p.daily, &|t| (t.year(), t.ordinal()));
    bucket(p.weekly, &|t| {
        let w = t.iso_week();
        (w.year(), w.week())
    });
    bucket(p.monthly, &|t| (t.year(), t.month()));
    let guard = items
        .iter()
        .position(|it| it.verified)
        .or(if items.is_empty() { None } else { Some(0) });
    if let Some(i) = guard {
        keep[i] = true;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn items(times: &[DateTime<Utc>]) -> Vec<Item> {
        times
            .iter()
            .map(|&created_at| Item {
                created_at,
                verified: true,
            })
            .collect()
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        // Two backups a day for five days, newest first.
        let times: Vec<_> = (1..=5).rev().flat_map(|d| [at(d, 14), at(d, 2)]).collect();
        let keep = plan(
            &items(&times),
            Policy {
                keep_last: 0,
                daily: 3,
                weekly: 0,
                monthly: 0,
            },
        );
        let kept: Vec<_> = times
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(kept, vec![at(5, 14), at(4, 14), at(3, 14)]);
    }

    #[test]
    fn weekly_and_monthly_reach_further_back() {
        let start = Utc.with_ymd_and_hms(2026, 11, 27, 2, 0, 0).unwrap();
        let times: Vec<_> = (0..120).map(|d| start - Duration::days(d)).collect();
        let keep = plan(
            &items(&times),
            Policy {
                keep_last: 1,
                daily: 7,
                weekly: 4,
                monthly: 3,
            },
        );
        let kept: Vec<_> = times
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(t, _)| t.date_naive().to_string())
            .collect();
        assert_eq!(
            kept,
            vec![
                "2026-11-27",
                "2026-11-26",
                "2026-11-25",
                "2026-11-24",
                "2026-11-23", // days, and the week of 23rd
                "2026-11-22",
                "2026-11-21", // days; 22nd ends the previous ISO week
                "2026-11-15",
                "2026-11-08", // weeks
                "2026-10-31", // month of October
                "2026-09-30", // September
            ]
        );
    }

    #[test]
    fn the_newest_verified_backup_is_never_deleted() {
        let mut it = items(&[at(5, 2), at(4, 2), at(3, 2)]);
        it[0].verified = false;
        it[1].verified = false;
        let none = Policy {
            keep_last: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
        };
        assert_eq!(plan(&it, none), vec![false, false, true]);
        it[2].verified = false;
        assert_eq!(
            plan(&it, none),
            vec![true, false, false],
            "the newest when none is verified"
        );
        assert!(plan(&[], none).is_empty());
    }
}
