//! Numeric and text timestamps of metric points, to epoch milliseconds.

/// Latest timestamp accepted (year 10000), in epoch milliseconds.
pub(crate) const MAX_TS_MS: i64 = 253_402_300_800_000;

/// Epoch timestamps below this are seconds (up to the year 5138; as milliseconds they would
/// be before 1973-03-03) …
const SECONDS_BELOW: f64 = 1e11;
/// … below this milliseconds (as microseconds they would be before 1973) …
const MILLIS_BELOW: f64 = 1e14;
/// … below this microseconds; above, nanoseconds.
pub(crate) const MICROS_BELOW: f64 = 1e17;

/// A numeric epoch timestamp in epoch milliseconds, its unit told by magnitude: below 10¹¹
/// seconds, below 10¹⁴ milliseconds, below 10¹⁷ microseconds, else nanoseconds. Every unit
/// is unambiguous for times from 1973 to 5138: `1795302000` (s), `1795302000123` (ms),
/// `1795302000123456` (µs) and `1795302000123456789` (ns) are all 2026-11-21T23:00:00Z.
/// Fractions are allowed (`1795302000.123` s, as `time.time()` and nginx's `$msec` write);
/// the result is rounded down to the millisecond.
pub fn epoch_to_ms(v: f64) -> Result<i64, String> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "timestamp {v} is not a time (expected epoch seconds, milliseconds, microseconds or nanoseconds since 1970, or RFC 3339 text)"
        ));
    }
    let ms = if v < SECONDS_BELOW {
        // via whole microseconds: `1795302000.123` is 1795302000.12299990… in binary
        (v * 1e6).round() / 1e3
    } else if v < MILLIS_BELOW {
        v
    } else if v < MICROS_BELOW {
        v / 1e3
    } else {
        v / 1e6
    };
    check_ts(ms.floor() as i64)
}

/// [`epoch_to_ms`] for integers (exact: no rounding through `f64` for nanoseconds).
pub fn epoch_int_to_ms(v: i64) -> Result<i64, String> {
    let f = v as f64;
    if v < 0 || f < MILLIS_BELOW {
        return epoch_to_ms(f);
    }
    if f < MICROS_BELOW {
        check_ts(v.div_euclid(1_000))
    } else {
        check_ts(v.div_euclid(1_000_000))
    }
}

pub(crate) fn check_ts(ms: i64) -> Result<i64, String> {
    if (0..MAX_TS_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!("timestamp {ms} ms is outside 1970..10000"))
    }
}
