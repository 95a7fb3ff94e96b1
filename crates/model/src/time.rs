//! oneM2M timestamps: ISO 8601 basic format `YYYYMMDDTHHMMSS[,ffffff]` in UTC (TS-0004 §6.3.3, m2m:timestamp).

use chrono::{DateTime, NaiveDateTime, Utc};

/// A point in time with microsecond resolution, as microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time. Only the outer layers call this; the cores receive `now` as an argument.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }

    /// Seconds since the epoch.
    pub fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }

    /// This time plus `secs` seconds, saturating.
    pub fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }

    /// Formats as `YYYYMMDDTHHMMSS,ffffff`.
    pub fn to_onem2m(self) -> String {
        let dt = DateTime::<Utc>::from_timestamp_micros(self.0).unwrap_or(DateTime::<Utc>::MAX_UTC);
        dt.format("%Y%m%dT%H%M%S,%6f").to_string()
    }

    /// Parses `YYYYMMDDTHHMMSS` with an optional `,fff…` or `.fff…` fraction and an optional `Z`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.strip_suffix('Z').unwrap_or(s);
        let (main, frac) = match s.find([',', '.']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        if main.len() != 15 || !main.is_ascii() {
            return None;
        }
        let dt = NaiveDateTime::parse_from_str(main, "%Y%m%dT%H%M%S").ok()?;
        let mut micros = dt.and_utc().timestamp_micros();
        if let Some(frac) = frac {
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let mut digits = frac.to_string();
            digits.truncate(6);
            while digits.len() < 6 {
                digits.push('0');
            }
            micros += digits.parse::<i64>().ok()?;
        }
        Some(Self(micros))
    }
}

#[cfg(test)]
mod tests {
    use super::Timestamp;

    #[test]
    fn parses_and_formats() {
        let t = Timestamp::parse("20261124T153000").unwrap();
        assert_eq!(t.to_onem2m(), "20261124T153000,000000");
        let f = Timestamp::parse("20261124T153000,5").unwrap();
        assert_eq!(f.0 - t.0, 500_000);
        assert_eq!(
            Timestamp::parse("20261124T153000.123456Z").unwrap().0 - t.0,
            123_456
        );
        assert_eq!(Timestamp::parse(&t.to_onem2m()), Some(t));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "2026",
            "20261324T153000",
            "20261124T153000,",
            "20261124T153000,x",
            "2026-11-24T15:30:00",
            "20261124T15300é",
        ] {
            assert_eq!(Timestamp::parse(s), None, "{s}");
        }
    }
}
