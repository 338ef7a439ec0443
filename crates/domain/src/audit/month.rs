//! Calendar months in UTC: the unit of audit partitions, retention and archives.

use std::fmt;
use std::str::FromStr;

use time::{Date, OffsetDateTime, UtcOffset};

/// A calendar month in UTC, written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    /// 1 to 12.
    number: u8,
}

/// A string that is not a month in `YYYY-MM` form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a month as YYYY-MM (for example 2026-01), got {0:?}")]
pub struct BadMonth(pub String);

impl Month {
    /// `None` unless `number` is 1 to 12 and the year has four digits.
    pub fn new(year: i32, number: u8) -> Option<Self> {
        ((1..=12).contains(&number) && (1000..=9999).contains(&year))
            .then_some(Self { year, number })
    }

    /// The month an instant falls in, in UTC.
    pub fn containing(at: OffsetDateTime) -> Self {
        let at = at.to_offset(UtcOffset::UTC);
        Self {
            year: at.year(),
            number: u8::from(at.month()),
        }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn number(self) -> u8 {
        self.number
    }

    /// The first instant of the month, UTC.
    pub fn start(self) -> OffsetDateTime {
        // Both parts are validated on construction, so the date always exists.
        let month = time::Month::try_from(self.number).unwrap_or(time::Month::January);
        Date::from_calendar_date(self.year, month, 1)
            .unwrap_or(Date::MIN)
            .midnight()
            .assume_utc()
    }

    /// The first instant of the next month: the month's exclusive end.
    pub fn end(self) -> OffsetDateTime {
        self.plus(1).start()
    }

    /// The month `n` months later (earlier when negative).
    pub fn plus(self, n: i32) -> Self {
        let index = self.year * 12 + i32::from(self.number) - 1 + n;
        Self {
            year: index.div_euclid(12),
            number: (index.rem_euclid(12) + 1) as u8,
        }
    }

    /// Every month from `self` up to and including `last`.
    pub fn through(self, last: Self) -> impl Iterator<Item = Self> {
        let mut next = Some(self);
        std::iter::from_fn(move || {
            let current = next.filter(|m| *m <= last)?;
            next = Some(current.plus(1));
            Some(current)
        })
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.number)
    }
}

impl FromStr for Month {
    type Err = BadMonth;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMonth(s.to_owned());
        let (year, number) = s.split_once('-').ok_or_else(bad)?;
        if year.len() != 4
            || number.len() != 2
            || !(year.bytes().chain(number.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        Self::new(
            year.parse().map_err(|_| bad())?,
            number.parse().map_err(|_| bad())?,
        )
        .ok_or_else(bad)
    }
}

impl serde::Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn months_parse_print_and_step_across_years() {
        let m: Month = "2026-12".parse().unwrap();
        assert_eq!(m.to_string(), "2026-12");
        assert_eq!(m.plus(1).to_string(), "2027-01");
        assert_eq!(m.plus(-12).to_string(), "2025-12");
        assert_eq!(m.plus(-24).plus(-1).to_string(), "2024-11");
        assert_eq!(m.start(), datetime!(2026-12-01 00:00 UTC));
        assert_eq!(m.end(), datetime!(2027-01-01 00:00 UTC));
        for bad in [
            "2026-13", "2026-00", "2026-1", "26-01", "2026/01", "", "abcd-ef", "2026-+1",
        ] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_containing_month_is_taken_in_utc() {
        let late_in_new_york = datetime!(2026-10-31 22:30 -04:00);
        assert_eq!(Month::containing(late_in_new_york).to_string(), "2026-11");
        assert_eq!(
            Month::containing(datetime!(2026-11-30 23:59:59.999999 UTC)).to_string(),
            "2026-11"
        );
    }

    #[test]
    fn through_lists_each_month_once_and_nothing_when_reversed() {
        let from: Month = "2026-11".parse().unwrap();
        let listed: Vec<String> = from.through(from.plus(2)).map(|m| m.to_string()).collect();
        assert_eq!(listed, ["2026-11", "2026-12", "2027-01"]);
        assert_eq!(from.plus(1).through(from).count(), 0);
    }
}
