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
