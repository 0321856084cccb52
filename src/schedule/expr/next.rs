//! When a [`Schedule`] fires: the next run after a moment, the usual gap between
//! runs, and the refusal of an expression that never fires.
//!
//! Kept apart from parsing and translation because it is a search, not a syntax:
//! the next run is looked for day by day over a whole 400-year Gregorian cycle,
//! after which the calendar repeats, so "no run found" means "never" and a rare
//! one (29 February that is also a Monday) is still found.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use super::{err, list, ExprError, Schedule};

impl Schedule {
    /// Refuse an expression whose day and month fields never meet.
    pub(super) fn check_fires(&self) -> Result<(), ExprError> {
        let start = NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("a valid date");
        if self.next_after(start).is_some() {
            return Ok(());
        }
        const FULL: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let months: Vec<&str> = self.months.iter().map(|&m| FULL[m as usize - 1]).collect();
        err(format!(
            "`{}` never runs: day-of-month {} does not occur in {} (the day-of-month and month fields never meet)",
            self.source,
            list(&self.doms, "-", |v| v.to_string()),
            months.join(", ")
        ))
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        if !self.months.contains(&d.month()) {
            return false;
        }
        let dom = self.doms.contains(&d.day());
        let dow = self.dows.contains(&d.weekday().num_days_from_sunday());
        match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) if self.either_day => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first run strictly after `t` (local wall-clock time), searched over one
    /// 400-year cycle of the calendar; `None` means the expression never fires.
    pub fn next_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        const CYCLE_DAYS: u32 = 146_097;
        let start = t.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut day = start.date();
        for _ in 0..=CYCLE_DAYS {
            if self.day_matches(day) {
                for &h in &self.hours {
                    for &m in &self.minutes {
                        let cand = day.and_time(NaiveTime::from_hms_opt(h, m, 0)?);
                        if cand >= start {
                            return Some(cand);
                        }
                    }
                }
            }
            day = day.succ_opt()?;
        }
        None
    }

    /// The usual gap between runs (the gap after the next run).
    pub fn interval(&self, now: NaiveDateTime) -> Option<Duration> {
        let a = self.next_after(now)?;
        let b = self.next_after(a)?;
        Some(b - a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn next_runs() {
        let s = Schedule::parse("Mon..Fri 03:30").unwrap();
        assert_eq!(
            s.next_after(at("2026-11-27 05:00")),
            Some(at("2026-11-30 03:30"))
        ); // Fri → Mon
        let d = Schedule::parse("0 2 * * *").unwrap();
        assert_eq!(
            d.next_after(at("2026-11-27 02:00")),
            Some(at("2026-11-28 02:00"))
        );
        assert_eq!(d.interval(at("2026-11-27 00:00")), Some(Duration::days(1)));
        // cron's OR of day-of-month and weekday
        let or = Schedule::parse("0 0 13 * 5").unwrap();
        assert_eq!(
            or.next_after(at("2026-11-27 01:00")),
            Some(at("2026-12-04 00:00"))
        );
        assert!(or.to_calendar().is_err());
    }

    #[test]
    fn expressions_that_never_fire_are_refused() {
        for (expr, day, months) in [
            ("0 2 30 2 *", "30", "February"),
            (
                "0 2 31 4,6,9,11 *",
                "31",
                "April, June, September, November",
            ),
            ("*-02-30 02:00", "30", "February"),
            ("Mon *-02-31 02:00", "31", "February"),
        ] {
            let e = Schedule::parse(expr).unwrap_err().0;
            assert!(
                e.contains("never runs")
                    && e.contains(&format!("day-of-month {day} does not occur in {months}")),
                "{expr}: {e}"
            );
        }
        // Rare but real: leap days, a leap day that is a Monday (systemd ANDs the days),
        // and cron's OR of day-of-month and weekday.
        let leap = Schedule::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            leap.next_after(at("2097-03-01 00:00")),
            Some(at("2104-02-29 00:00"))
        );
        let monday = Schedule::parse("Mon *-02-29 00:00").unwrap();
        assert_eq!(
            monday.next_after(at("2026-01-01 00:00")),
            Some(at("2044-02-29 00:00"))
        );
        assert!(Schedule::parse("0 2 30 2 1").is_ok());
        assert!(Schedule::parse("0 2 31 * *").is_ok());
    }
}
