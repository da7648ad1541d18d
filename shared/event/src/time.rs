//! Times as the events carry them: RFC 3339 in UTC with milliseconds, and the providers' epoch
//! timestamps of any unit.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// RFC 3339 in UTC with milliseconds, e.g. `2025-09-09T03:59:43.001Z`.
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Epoch milliseconds → time, `None` when out of range.
pub fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// A provider epoch timestamp of unknown unit → time. Values below 10^11 are seconds
/// (that is the year 5138 in seconds and 1973 in milliseconds; Z-API's Disconnected
/// `momment` is seconds while its other `momment`s are milliseconds).
pub fn from_epoch_guess(value: i64) -> Option<DateTime<Utc>> {
    if value <= 0 {
        return None;
    }
    if value < 100_000_000_000 {
        Utc.timestamp_opt(value, 0).single()
    } else {
        from_millis(value)
    }
}

/// A time as an event carries it: UTC to the millisecond, written as RFC 3339 with milliseconds
/// and `Z` (`2025-09-09T03:59:43.001Z`). It reads any RFC 3339 time; it compares with its
/// written form (`time == "2025-09-09T03:59:43.001Z"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(DateTime<Utc>);

impl Time {
    /// The time `ms` milliseconds after the epoch, `None` when out of range.
    pub fn from_millis(ms: i64) -> Option<Time> {
        from_millis(ms).map(Time)
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The time as chrono's.
    pub fn utc(self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Time {
    /// `t` to the millisecond (what the written form keeps).
    fn from(t: DateTime<Utc>) -> Time {
        Time(from_millis(t.timestamp_millis()).unwrap_or(t))
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339_ms(self.0))
    }
}

impl std::str::FromStr for Time {
    type Err = chrono::ParseError;

    fn from_str(s: &str) -> Result<Time, Self::Err> {
        DateTime::parse_from_rfc3339(s).map(|t| Time::from(t.with_timezone(&Utc)))
    }
}

impl PartialEq<str> for Time {
    fn eq(&self, other: &str) -> bool {
        rfc3339_ms(self.0) == other
    }
}

impl PartialEq<&str> for Time {
    fn eq(&self, other: &&str) -> bool {
        rfc3339_ms(self.0) == *other
    }
}

impl serde::Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "json-schema")]
impl schemars::JsonSchema for Time {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Time".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_milliseconds_and_z() {
        let t = from_millis(1757390383001).expect("in range");
        assert_eq!(rfc3339_ms(t), "2025-09-09T03:59:43.001Z");
    }

    #[test]
    fn epoch_guess_tells_seconds_from_milliseconds() {
        assert_eq!(
            rfc3339_ms(from_epoch_guess(1580163342).expect("s")),
            "2020-01-27T22:15:42.000Z"
        );
        assert_eq!(
            rfc3339_ms(from_epoch_guess(1757390383001).expect("ms")),
            "2025-09-09T03:59:43.001Z"
        );
        assert!(from_epoch_guess(0).is_none());
        assert!(from_epoch_guess(-5).is_none());
    }

    #[test]
    fn a_time_writes_and_reads_its_written_form() {
        let t: Time = "2025-09-09T03:59:43.001Z".parse().expect("RFC 3339");
        assert_eq!(t, "2025-09-09T03:59:43.001Z");
        assert_eq!(t.millis(), 1757390383001);
        assert_eq!(serde_json::to_string(&t).expect("ser"), r#""2025-09-09T03:59:43.001Z""#);
        let offset: Time = serde_json::from_str(r#""2025-09-09T05:59:43.001+02:00""#).expect("an offset");
        assert_eq!(offset, t, "read in UTC");
        assert!(serde_json::from_str::<Time>(r#""yesterday""#).is_err());
        let fine = Time::from(from_millis(1757390383001).expect("ms") + chrono::Duration::microseconds(999));
        assert_eq!(fine, t, "kept to the millisecond, as written");
    }
}
