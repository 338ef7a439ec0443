//! Go's duration syntax (`300ms`, `30s`, `5m`, `1h30m`, `1.5h`), as the
//! operator contract uses it.
//!
//! Written here rather than taken from a crate: `humantime` accepts a different
//! grammar (`1 day`, spaces, no fractions), and the crates that port Go's parser
//! are unmaintained. The grammar is small and fully tested below.

use std::time::Duration;

/// Parses a Go duration. Negative durations are refused: no setting of ours
/// has a meaning for them.
pub fn parse_go_duration(input: &str) -> Result<Duration, String> {
    let s = input.strip_prefix('+').unwrap_or(input);
    if s.starts_with('-') {
        return Err(format!(
            "{input:?} is negative; expected a positive duration such as 30s"
        ));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("expected a duration such as 30s, 5m or 1h30m".to_owned());
    }
    let mut rest = s;
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid(input));
        }
        let value: f64 = number.parse().map_err(|_| invalid(input))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "{input:?} is missing a unit; use ns, us, ms, s, m or h"
                ));
            }
            other => {
                return Err(format!(
                    "{input:?} has unknown unit {other:?}; use ns, us, ms, s, m or h"
                ));
            }
        };
        total_nanos += value * nanos_per_unit;
        rest = after;
    }
    // Go caps durations at about 290 years (i64 nanoseconds).
    if total_nanos > i64::MAX as f64 {
        return Err(format!("{input:?} is too long"));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

fn invalid(input: &str) -> String {
    format!("{input:?} is not a duration; expected Go syntax such as 30s, 5m or 1h30m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_go_syntax() {
        let cases = [
            ("0", Duration::ZERO),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5h", Duration::from_secs(5400)),
            ("300ms", Duration::from_millis(300)),
            ("1m0.5s", Duration::from_millis(60_500)),
            ("2h45m10s", Duration::from_secs(2 * 3600 + 45 * 60 + 10)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("+15m", Duration::from_secs(900)),
            (".5s", Duration::from_millis(500)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_go_duration(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "", "30", "5 m", "1d", "1h30", "abc", "1..5s", "s", "-5m", "1h-5m", "15M", ".",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
