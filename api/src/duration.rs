//! The one way stressmix components read a duration from a flag or an environment variable:
//! a decimal number with an optional unit, `ms`, `s`, `m`, `h` or `d` (`250ms`, `1.5`, `90s`, `24h`,
//! `30d`); a bare number is seconds.

use std::time::Duration;

use thiserror::Error;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// Not a number followed by a known unit.
    #[error("{0:?} is not a duration like 250ms, 1.5, 90s, 15m, 24h or 30d")]
    Syntax(String),
    /// A unit other than ms, s, m, h, d.
    #[error("{0:?}: unknown unit {1:?} (use ms, s, m, h or d)")]
    Unit(String, String),
    /// Too large to represent.
    #[error("{0:?} is too large")]
    TooLarge(String),
    /// Zero where only a positive duration makes sense.
    #[error("{0:?} must be more than zero")]
    NotPositive(String),
}

/// Parses a duration of zero or more.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let syntax = || DurationError::Syntax(text.to_owned());
    if number.is_empty() {
        return Err(syntax());
    }
    let value: f64 = number.parse().map_err(|_| syntax())?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => return Err(DurationError::Unit(text.to_owned(), other.to_owned())),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| DurationError::TooLarge(text.to_owned()))
}

/// Parses a duration that must be more than zero (an interval, a timeout).
pub fn parse_positive(text: &str) -> Result<Duration, DurationError> {
    let duration = parse(text)?;
    if duration.is_zero() {
        return Err(DurationError::NotPositive(text.trim().to_owned()));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_and_a_bare_number() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse(" 5s "), Ok(Duration::from_secs(5)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "h", "fast", "3 weeks", "1.2.3s", "-5s", ".", "5 s"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            parse("5w"),
            Err(DurationError::Unit("5w".into(), "w".into()))
        );
        assert!(matches!(
            parse("99999999999999999999d"),
            Err(DurationError::TooLarge(_))
        ));
        assert_eq!(
            parse_positive("0s"),
            Err(DurationError::NotPositive("0s".into()))
        );
        assert_eq!(parse_positive("10s"), Ok(Duration::from_secs(10)));
    }
}
