//! TS-0003 §7.1.3 (accessControlTimeWindow): the extended crontab syntax of TS-0004 §7.3.8.
//!
//! An entry has six whitespace-separated fields, `second minute hour day-of-month month
//! day-of-week`, optionally followed by a seventh `year` field (later TS-0004 releases, Table
//! 7.4.9.1-4). Each field is a comma-separated list of items; an item is `*`, `*/step`, `n`,
//! `a-b` or `a-b/step`.
//!
//! | Field | Range |
//! |---|---|
//! | second, minute | 0–59 |
//! | hour | 0–23 |
//! | day-of-month | 1–31 |
//! | month | 1–12 |
//! | day-of-week | 0–6, 0 = Sunday |
//! | year | 2000–9999 |
//!
//! Day-of-month and day-of-week are combined with AND: every field has to match, unlike POSIX
//! cron, which ORs the two day fields when both are restricted. The spec does not say which; AND
//! is the reading that never grants more than either field allows.
//!
//! Names (`MON`, `JAN`), `?`, `L`, `W`, `#` and wrapping ranges (`22-2`) are not part of the
//! syntax and are refused when the ACP is compiled.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

/// The broken-down local time of a request (`rq_time` in the configured time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalTime {
    second: u32,
    minute: u32,
    hour: u32,
    day_of_month: u32,
    month: u32,
    day_of_week: u32,
    year: i32,
}

impl LocalTime {
    pub(crate) fn new(now: DateTime<Utc>, zone: Tz) -> Self {
        let local = now.with_timezone(&zone);
        Self {
            second: local.second(),
            minute: local.minute(),
            hour: local.hour(),
            day_of_month: local.day(),
            month: local.month(),
            day_of_week: local.weekday().num_days_from_sunday(),
            year: local.year(),
        }
    }
}

/// One `m2m:scheduleEntry`, compiled into bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScheduleEntry {
    second: u64,
    minute: u64,
    hour: u64,
    day_of_month: u64,
    month: u64,
    day_of_week: u64,
    /// `None` for six fields or a `*` year; otherwise `(first, last, step)` items.
    year: Option<Box<[(u32, u32, u32)]>>,
}

const RANGES: [(u32, u32, &str); 7] = [
    (0, 59, "second"),
    (0, 59, "minute"),
    (0, 23, "hour"),
    (1, 31, "day-of-month"),
    (1, 12, "month"),
    (0, 6, "day-of-week"),
    (2000, 9999, "year"),
];

fn number(text: &str, field: &str) -> Result<u32, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 4 {
        return Err(format!("{field}: `{text}` is not a number"));
    }
    text.parse()
        .map_err(|_| format!("{field}: `{text}` is not a number"))
}

/// Parses one field into `(first, last, step)` items.
fn items(text: &str, min: u32, max: u32, field: &str) -> Result<Vec<(u32, u32, u32)>, String> {
    text.split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(number(step, field)?)),
                None => (item, None),
            };
            let (first, last) = if range == "*" {
                (min, max)
            } else if let Some((a, b)) = range.split_once('-') {
                (number(a, field)?, number(b, field)?)
            } else {
                if step.is_some() {
                    return Err(format!(
                        "{field}: `{item}`: a step needs `*` or a range before it"
                    ));
                }
                let n = number(range, field)?;
                (n, n)
            };
            if first < min || last > max {
                return Err(format!("{field}: `{item}` is outside {min}-{max}"));
            }
            if first > last {
                return Err(format!("{field}: `{item}` is a descending range"));
            }
            let step = step.unwrap_or(1);
            if step == 0 {
                return Err(format!("{field}: `{item}` has a zero step"));
            }
            Ok((first, last, step))
        })
        .collect()
}

fn bits(items: &[(u32, u32, u32)]) -> u64 {
    let mut set = 0u64;
    for &(first, last, step) in items {
        let mut v = first;
        while v <= last {
            set |= 1u64 << v;
            v += step;
        }
    }
    set
}

fn has(set: u64, v: u32) -> bool {
    v < 64 && set & (1u64 << v) != 0
}

impl ScheduleEntry {
    /// Parses one entry; the error text names the field and item at fault.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        if fields.len() != 6 && fields.len() != 7 {
            return Err(format!(
                "`{text}` has {} fields, expected 6 (second minute hour day-of-month month \
                 day-of-week) or 7 (… year)",
                fields.len()
            ));
        }
        let mut parsed = Vec::with_capacity(7);
        for (field, (min, max, name)) in fields.iter().zip(RANGES) {
            parsed.push(items(field, min, max, name)?);
        }
        let set = |i: usize| parsed.get(i).map(|items| bits(items)).unwrap_or_default();
        let year = match (fields.get(6), parsed.get(6)) {
            (Some(&"*"), _) | (None, _) | (_, None) => None,
            (Some(_), Some(items)) => Some(items.clone().into_boxed_slice()),
        };
        Ok(Self {
            second: set(0),
            minute: set(1),
            hour: set(2),
            day_of_month: set(3),
            month: set(4),
            day_of_week: set(5),
            year,
        })
    }

    /// Whether the local time of the request falls into this window (second granularity).
    pub(crate) fn matches(&self, t: &LocalTime) -> bool {
        has(self.second, t.second)
            && has(self.minute, t.minute)
            && has(self.hour, t.hour)
            && has(self.day_of_month, t.day_of_month)
            && has(self.month, t.month)
            && has(self.day_of_week, t.day_of_week)
            && self.year.as_deref().is_none_or(|items| {
                items.iter().any(|&(first, last, step)| {
                    u32::try_from(t.year)
                        .is_ok_and(|y| (first..=last).contains(&y) && (y - first) % step == 0)
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> LocalTime {
        LocalTime::new(
            Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap(),
            chrono_tz::UTC,
        )
    }

    #[test]
    fn office_hours() {
        let e = ScheduleEntry::parse("* * 8-17 * * 1-5").unwrap();
        assert!(e.matches(&at(2024, 1, 1, 10, 0, 0))); // Monday
        assert!(e.matches(&at(2024, 1, 1, 17, 59, 59)));
        assert!(!e.matches(&at(2024, 1, 1, 18, 0, 0)));
        assert!(!e.matches(&at(2024, 1, 6, 10, 0, 0))); // Saturday
    }

    #[test]
    fn steps_lists_years() {
        let e = ScheduleEntry::parse("*/15 0,30 * * * * 2024-2030/2").unwrap();
        assert!(e.matches(&at(2024, 3, 3, 3, 30, 45)));
        assert!(!e.matches(&at(2024, 3, 3, 3, 30, 44)));
        assert!(!e.matches(&at(2025, 3, 3, 3, 30, 45)));
        assert!(e.matches(&at(2026, 3, 3, 3, 0, 0)));
        assert!(!e.matches(&at(2026, 3, 3, 3, 1, 0)));
    }

    #[test]
    fn refused() {
        for bad in [
            "* * * * *",
            "* * * * * * * *",
            "60 * * * * *",
            "* * 24 * * *",
            "* * * 0 * *",
            "* * * * 13 *",
            "* * * * * 7",
            "* * * * * MON",
            "* * 22-2 * * *",
            "*/0 * * * * *",
            "5/10 * * * * *",
            "1,,2 * * * * *",
            "* * * * * * 1999",
            "-1 * * * * *",
        ] {
            assert!(ScheduleEntry::parse(bad).is_err(), "{bad}");
        }
    }
}
