//! The duration syntax of every command-line flag (`--recovery-interval 15s`,
//! `--retry-min 500ms`, `--timeout 3m`): a whole number followed by `ms`, `s` or `m`, or a
//! bare whole number of seconds.
//!
//! Strict on purpose: no fractions, signs, spaces, other units or values that overflow, and
//! every rejection says what was written and what is accepted.

use std::time::Duration;

/// What [`parse_duration`] accepts, for error messages and help texts.
pub const DURATION_SYNTAX: &str =
    "a whole number followed by ms, s or m (e.g. 500ms, 10s, 2m), or a whole number of seconds";

/// A rejected duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// It does not start with a whole number.
    #[error("{text:?} is not a duration: write {DURATION_SYNTAX}")]
    NotANumber {
        /// What was written.
        text: String,
    },
    /// The unit is not one of `ms`, `s`, `m`.
    #[error("{text:?} has an unknown unit {unit:?}: use ms, s or m (e.g. 500ms, 10s, 2m)")]
    UnknownUnit {
        /// What was written.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// The value does not fit a duration.
    #[error("{text:?} is too long a duration")]
    TooLarge {
        /// What was written.
        text: String,
    },
}

/// Parses `500ms`, `10s`, `2m` or `7` (seconds). See the [module](self) for the rules.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(DurationError::NotANumber {
            text: text.to_owned(),
        });
    }
    let too_large = || DurationError::TooLarge {
        text: text.to_owned(),
    };
    // Only ASCII digits: the one way to fail is overflow.
    let value: u64 = number.parse().map_err(|_| too_large())?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" | "" => Ok(Duration::from_secs(value)),
        "m" => value
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(too_large),
        _ => Err(DurationError::UnknownUnit {
            text: text.to_owned(),
            unit: unit.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Moved from the Coordinator's `main.rs` with its parser.
    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }

    /// Moved from the initializer's `main.rs` with its parser.
    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(
            parse_duration("5h")
                .unwrap_err()
                .to_string()
                .contains("unknown unit \"h\"")
        );
        assert!(
            parse_duration("fast")
                .unwrap_err()
                .to_string()
                .contains("not a duration")
        );
    }

    #[test]
    fn units_and_bare_seconds() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejections_name_the_input_and_teach_the_syntax() {
        let error = parse_duration("fast").unwrap_err();
        assert_eq!(
            error,
            DurationError::NotANumber {
                text: "fast".into()
            }
        );
        assert!(error.to_string().contains("\"fast\" is not a duration"));
        assert!(error.to_string().contains("500ms"));

        let error = parse_duration("5h").unwrap_err().to_string();
        assert!(error.contains("unknown unit \"h\""), "{error}");
        assert!(error.contains("use ms, s or m"), "{error}");
    }

    #[test]
    fn what_the_strict_syntax_refuses() {
        for text in [
            "", " 5s", "5s ", "5 s", "+5s", "-5s", "0.5s", "1.5", "5S", "5sec", "5ms5", "s", "1e3",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(matches!(
            parse_duration("18446744073709551616s"),
            Err(DurationError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_duration("18446744073709551615m"),
            Err(DurationError::TooLarge { .. })
        ));
        assert_eq!(
            parse_duration("18446744073709551615ms").unwrap(),
            Duration::from_millis(u64::MAX)
        );
    }
}
