//! Schedule expressions: 5-field cron, systemd OnCalendar (a common subset) and the
//! `@hourly`/`@daily`/`@weekly`/`@monthly` shorthands, parsed into one form that can
//! be written back as either syntax; [`next`] computes when that form fires.
//!
//! Cron ORs day-of-month and day-of-week when both are restricted; systemd ANDs
//! them. Such an expression cannot be translated and is refused with that reason.
//! An expression that never fires (`0 2 30 2 *`, 30 February) is refused at parse
//! time too, so every [`Schedule`] has a next run.

mod next;

use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: BTreeSet<u32>,
    hours: BTreeSet<u32>,
    doms: BTreeSet<u32>,
    months: BTreeSet<u32>,
    /// 0 = Sunday .. 6 = Saturday
    dows: BTreeSet<u32>,
    dom_any: bool,
    dow_any: bool,
    /// When both day fields are restricted: true = either matches (cron), false = both (systemd).
    either_day: bool,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError(pub String);

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; accepted forms: 5-field cron (`0 2 * * *`), systemd OnCalendar (`daily`, `*-*-* 02:00:00`, `Mon..Fri 03:30`) or `@hourly`, `@daily`, `@weekly`, `@monthly`",
            self.0
        )
    }
}

impl std::error::Error for ExprError {}

const DOW_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn err<T>(msg: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError(msg.into()))
}

fn all(lo: u32, hi: u32) -> BTreeSet<u32> {
    (lo..=hi).collect()
}

/// One value: a number, or a name from `names` (whose index + `base` is the value).
fn value(
    tok: &str,
    field: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    base: u32,
) -> Result<u32, ExprError> {
    let lower = tok.to_ascii_lowercase();
    if let Some(i) = names
        .iter()
        .position(|n| lower.starts_with(n) && lower.len() >= 3)
    {
        return Ok(i as u32 + base);
    }
    match tok.parse::<u32>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => err(format!(
            "{field} field: `{tok}` is not a value from {lo} to {hi}"
        )),
    }
}

/// A comma list of `*`, `v`, `a-b` (cron) or `a..b` (systemd), each with an optional `/step`.
fn field(
    spec: &str,
    field: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    base: u32,
    range_sep: &str,
) -> Result<BTreeSet<u32>, ExprError> {
    let mut out = BTreeSet::new();
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => match s.parse::<u32>() {
                Ok(n) if n > 0 => (r, n),
                _ => return err(format!("{field} field: `{s}` is not a step")),
            },
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((x, y)) = range.split_once(range_sep) {
            (
                value(x, field, lo, hi, names, base)?,
                value(y, field, lo, hi, names, base)?,
            )
        } else {
            let v = value(range, field, lo, hi, names, base)?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a > b {
            return err(format!("{field} field: range `{range}` runs backwards"));
        }
        out.extend((a..=b).step_by(step as usize));
    }
    if out.is_empty() {
        return err(format!("{field} field is empty"));
    }
    Ok(out)
}

impl Schedule {
    pub fn parse(input: &str) -> Result<Schedule, ExprError> {
        let s = input.trim();
        if s.is_empty() {
            return err("the expression is empty");
        }
        let shorthand = match s.to_ascii_lowercase().as_str() {
            "@hourly" | "hourly" => Some("0 * * * *"),
            "@daily" | "@midnight" | "daily" => Some("0 0 * * *"),
            "@weekly" | "weekly" => Some("0 0 * * 1"),
            "@monthly" | "monthly" => Some("0 0 1 * *"),
            _ => None,
        };
        let mut parsed = if let Some(c) = shorthand {
            Self::parse_cron(c)?
        } else if s.starts_with('@') {
            return err(format!("`{s}` is not a known shorthand"));
        } else if s.contains(':') || s.chars().any(|c| c == '.') && !s.contains(' ') {
            Self::parse_calendar(s)?
        } else {
            Self::parse_cron(s)?
        };
        // systemd's `weekly` is Monday; cron's @weekly is Sunday. Keep the word's own meaning.
        if s.eq_ignore_ascii_case("@weekly") {
            parsed.dows = BTreeSet::from([0]);
        }
        parsed.source = s.to_string();
        parsed.check_fires()?;
        Ok(parsed)
    }

    fn parse_cron(s: &str) -> Result<Schedule, ExprError> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 5 {
            return err(format!(
                "`{s}` has {} fields; cron needs 5 (minute hour day-of-month month day-of-week)",
                f.len()
            ));
        }
        let mut dows = field(f[4], "day-of-week", 0, 7, &DOW_NAMES, 0, "-")?;
        if dows.remove(&7) {
            dows.insert(0);
        }
        Ok(Schedule {
            minutes: field(f[0], "minute", 0, 59, &[], 0, "-")?,
            hours: field(f[1], "hour", 0, 23, &[], 0, "-")?,
            doms: field(f[2], "day-of-month", 1, 31, &[], 0, "-")?,
            months: field(f[3], "month", 1, 12, &MONTH_NAMES, 1, "-")?,
            dows,
            dom_any: f[2] == "*",
            dow_any: f[4] == "*",
            either_day: true,
            source: String::new(),
        })
    }

    fn parse_calendar(s: &str) -> Result<Schedule, ExprError> {
        let mut dows = all(0, 6);
        let mut dow_any = true;
        let (mut months, mut doms, mut dom_any) = (all(1, 12), all(1, 31), true);
        let mut time = None;
        for tok in s.split_whitespace() {
            if tok.contains(':') {
                time = Some(tok);
            } else if tok.contains('-')
                && tok
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit() || c == '*')
            {
                let parts: Vec<&str> = tok.split('-').collect();
                let (m, d) = match parts.as_slice() {
                    [y, m, d] => {
                        if *y != "*" {
                            return err(format!(
                                "date `{tok}`: only `*` is supported for the year"
                            ));
                        }
                        (*m, *d)
                    }
                    [m, d] => (*m, *d),
                    _ => return err(format!("date `{tok}` is not YYYY-MM-DD or MM-DD")),
                };
                months = field(m, "month", 1, 12, &[], 0, "..")?;
                doms = field(d, "day-of-month", 1, 31, &[], 0, "..")?;
                dom_any = d == "*";
            } else {
                dows = field(tok, "day-of-week", 0, 6, &DOW_NAMES, 0, "..")?;
                dow_any = false;
            }
        }
        let Some(time) = time else {
            return err(format!("`{s}` has no time (HH:MM)"));
        };
        let t: Vec<&str> = time.split(':').collect();
        if t.len() == 3 && !matches!(t[2], "0" | "00") {
            return err(format!("time `{time}`: seconds must be 00"));
        }
        if !(2..=3).contains(&t.len()) {
            return err(format!("time `{time}` is not HH:MM or HH:MM:SS"));
        }
        Ok(Schedule {
            minutes: field(t[1], "minute", 0, 59, &[], 0, "..")?,
            hours: field(t[0], "hour", 0, 23, &[], 0, "..")?,
            doms,
            months,
            dows,
            dom_any,
            dow_any,
            either_day: false,
            source: String::new(),
        })
    }

    fn both_days(&self) -> bool {
        !self.dom_any && !self.dow_any
    }

    /// As a 5-field cron line.
    pub fn to_cron(&self) -> Result<String, ExprError> {
        if self.both_days() && !self.either_day {
            return err(format!(
                "`{}` needs both a day of month and a weekday, which cron cannot express",
                self.source
            ));
        }
        let f = |set: &BTreeSet<u32>, lo, hi, any: bool| {
            if any || *set == all(lo, hi) {
                "*".to_string()
            } else {
                list(set, "-", |v| v.to_string())
            }
        };
        Ok(format!(
            "{} {} {} {} {}",
            f(&self.minutes, 0, 59, false),
            f(&self.hours, 0, 23, false),
            f(&self.doms, 1, 31, self.dom_any),
            f(&self.months, 1, 12, false),
            f(&self.dows, 0, 6, self.dow_any),
        ))
    }

    /// As a systemd OnCalendar value.
    pub fn to_calendar(&self) -> Result<String, ExprError> {
        if self.both_days() && self.either_day {
            return err(format!(
                "`{}` runs on a day of month OR a weekday (cron's rule), which OnCalendar cannot express",
                self.source
            ));
        }
        let num = |set: &BTreeSet<u32>, lo, hi, any: bool| {
            if any || *set == all(lo, hi) {
                "*".to_string()
            } else {
                list(set, "..", |v| format!("{v:02}"))
            }
        };
        let dow = if self.dow_any || self.dows == all(0, 6) {
            String::new()
        } else {
            format!(
                "{} ",
                list(&self.dows, "..", |v| {
                    let n = DOW_NAMES[v as usize];
                    format!("{}{}", n[..1].to_uppercase(), &n[1..])
                })
            )
        };
        Ok(format!(
            "{dow}*-{}-{} {}:{}:00",
            num(&self.months, 1, 12, false),
            num(&self.doms, 1, 31, self.dom_any),
            num(&self.hours, 0, 23, false),
            num(&self.minutes, 0, 59, false),
        ))
    }
}

/// `1,2,3,5` → `1-3,5` (with `sep` as the range mark; runs of 3 or more become ranges).
fn list(set: &BTreeSet<u32>, sep: &str, show: impl Fn(u32) -> String) -> String {
    let v: Vec<u32> = set.iter().copied().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            out.push(format!("{}{sep}{}", show(v[i]), show(v[j])));
        } else {
            out.extend(v[i..=j].iter().map(|&x| show(x)));
        }
        i = j + 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_translate_both_ways() {
        let cases = [
            ("0 2 * * *", "0 2 * * *", "*-*-* 02:00:00"),
            ("@daily", "0 0 * * *", "*-*-* 00:00:00"),
            ("@hourly", "0 * * * *", "*-*-* *:00:00"),
            ("@monthly", "0 0 1 * *", "*-*-01 00:00:00"),
            ("*-*-* 02:00:00", "0 2 * * *", "*-*-* 02:00:00"),
            ("Mon..Fri 03:30", "30 3 * * 1-5", "Mon..Fri *-*-* 03:30:00"),
            (
                "*/15 * * * *",
                "0,15,30,45 * * * *",
                "*-*-* *:00,15,30,45:00",
            ),
            ("30 4 * * sun", "30 4 * * 0", "Sun *-*-* 04:30:00"),
        ];
        for (input, cron, cal) in cases {
            let s = Schedule::parse(input).unwrap();
            assert_eq!(s.to_cron().unwrap(), cron, "{input}");
            assert_eq!(s.to_calendar().unwrap(), cal, "{input}");
        }
    }

    #[test]
    fn bad_expressions_name_the_field() {
        let e = Schedule::parse("61 2 * * *").unwrap_err().to_string();
        assert!(
            e.starts_with("minute field: `61` is not a value from 0 to 59"),
            "{e}"
        );
        assert!(e.contains("accepted forms"));
        assert!(Schedule::parse("0 2 * *")
            .unwrap_err()
            .0
            .contains("has 4 fields"));
        assert!(Schedule::parse("*-*-* 02:00:30")
            .unwrap_err()
            .0
            .contains("seconds must be 00"));
        assert!(Schedule::parse("@sometimes").is_err());
        assert!(Schedule::parse("0 25 * * *")
            .unwrap_err()
            .0
            .starts_with("hour field"));
    }
}
