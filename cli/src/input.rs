//! Parsing of command-line values: hex strings, durations such as `10s`,
//! and messages given as hex or read from a file.

use std::path::Path;
use std::time::Duration;

/// A command-line value that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{what} is not valid hex: {reason}")]
    Hex { what: &'static str, reason: String },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("invalid duration {0:?}: expected a number with a unit, e.g. 500ms, 10s, 2m")]
    Duration(String),
}

/// Decodes hex (an optional `0x` prefix and surrounding whitespace are
/// ignored); `what` names the value in the error.
pub fn decode_hex(what: &'static str, text: &str) -> Result<Vec<u8>, InputError> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if text.is_empty() {
        return Err(InputError::Empty { what });
    }
    hex::decode(text).map_err(|e| InputError::Hex {
        what,
        reason: e.to_string(),
    })
}

/// The message to sign or verify: `hex` if given, otherwise the bytes of `file`.
pub fn message(hex: Option<&str>, file: Option<&Path>) -> Result<Vec<u8>, InputError> {
    let bytes = match (hex, file) {
        (Some(h), _) => decode_hex("message", h)?,
        (None, Some(path)) => std::fs::read(path).map_err(|error| InputError::Read {
            path: path.display().to_string(),
            error,
        })?,
        (None, None) => Vec::new(),
    };
    if bytes.is_empty() {
        return Err(InputError::Empty { what: "message" });
    }
    Ok(bytes)
}

/// Parses `500ms`, `10s`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, InputError> {
    let bad = || InputError::Duration(text.to_owned());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_accepts_prefix_and_refuses_garbage() {
        assert_eq!(decode_hex("x", "0xABcd").ok(), Some(vec![0xab, 0xcd]));
        assert_eq!(decode_hex("x", " 00ff\n").ok(), Some(vec![0, 0xff]));
        assert!(decode_hex("x", "abc").is_err());
        assert!(decode_hex("x", "zz").is_err());
        assert!(decode_hex("x", "0x").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").ok(), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("10").ok(), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("1.5s").ok(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_duration("2m").ok(), Some(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn message_from_hex_or_file() {
        assert_eq!(message(Some("6869"), None).ok(), Some(b"hi".to_vec()));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.bin");
        std::fs::write(&path, b"file message").expect("write");
        assert_eq!(
            message(None, Some(&path)).ok(),
            Some(b"file message".to_vec())
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        assert!(message(None, Some(&empty)).is_err());
        assert!(message(None, Some(&dir.path().join("missing"))).is_err());
    }
}
