//! Timestamps of records and heads: RFC 3339, UTC, exactly three fraction
//! digits (`2025-01-31T12:00:00.123Z`).
//!
//! One fixed-width form means timestamps compare correctly as strings (in
//! SQL and in the verifier) and hash the same everywhere. Query bounds may be
//! any RFC 3339 time; they are converted to this form, rounded so that the
//! inclusive bounds stay exact at millisecond precision.

use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

const CANONICAL: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Now, truncated to the millisecond.
pub(crate) fn now() -> OffsetDateTime {
    truncate(OffsetDateTime::now_utc())
}

fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_millisecond(t.millisecond()).unwrap_or(t)
}

/// The canonical form of `t` (which must be representable with a four-digit year).
pub(crate) fn format(t: OffsetDateTime) -> Result<String, String> {
    truncate(t)
        .format(CANONICAL)
        .map_err(|e| format!("cannot format timestamp: {e}"))
}

/// Parses a timestamp in canonical form only.
pub(crate) fn parse_canonical(s: &str) -> Option<OffsetDateTime> {
    let t = PrimitiveDateTime::parse(s, CANONICAL).ok()?.assume_utc();
    // The parser accepts a few things `format` would never write.
    (format(t).ok()? == s).then_some(t)
}

/// Converts an RFC 3339 query bound to canonical form: a lower bound is
/// rounded up to the next millisecond, an upper bound down.
pub(crate) fn bound(s: &str, lower: bool) -> Result<String, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?
        .to_offset(UtcOffset::UTC);
    let floor = truncate(t);
    let t = if lower && floor != t {
        floor + Duration::milliseconds(1)
    } else {
        floor
    };
    format(t)
}

/// Seconds and nanoseconds since the Unix epoch of a canonical timestamp.
pub(crate) fn unix(s: &str) -> Option<std::time::Duration> {
    let t = parse_canonical(s)?;
    let nanos = u64::try_from(t.unix_timestamp_nanos()).ok()?;
    Some(std::time::Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_round_trips() {
        let s = format(now()).expect("format");
        assert_eq!(s.len(), "2025-01-31T12:00:00.123Z".len());
        assert!(s.ends_with('Z'));
        assert_eq!(parse_canonical(&s).and_then(|t| format(t).ok()), Some(s));
        for bad in [
            "2025-01-31T12:00:00Z",
            "2025-01-31T12:00:00.1234Z",
            "2025-01-31T12:00:00.123+00:00",
            "2025-01-31 12:00:00.123Z",
            "",
        ] {
            assert!(parse_canonical(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bounds_round_outwards_exactly() {
        assert_eq!(
            bound("2025-01-31T12:00:00Z", true).as_deref(),
            Ok("2025-01-31T12:00:00.000Z")
        );
        assert_eq!(
            bound("2025-01-31T12:00:00.0005Z", true).as_deref(),
            Ok("2025-01-31T12:00:00.001Z")
        );
        assert_eq!(
            bound("2025-01-31T12:00:00.0005Z", false).as_deref(),
            Ok("2025-01-31T12:00:00.000Z")
        );
        assert_eq!(
            bound("2025-01-31T14:00:00.25+02:00", false).as_deref(),
            Ok("2025-01-31T12:00:00.250Z")
        );
        assert!(bound("yesterday", true).is_err());
    }
}
