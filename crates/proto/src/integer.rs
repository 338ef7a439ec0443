//! Integers as JSON Schema counts them: `5` and `5.0` are the same integer
//! (a number whose fractional part is zero), so a field the OpenAPI
//! documents declare `integer` takes both. serde's own integer types refuse
//! `5.0`, which a client that serialises every number as a float sends.

use serde::Deserialize;
use serde::de::{Deserializer, Error, Unexpected};

/// `#[serde(deserialize_with = "crate::integer::u32")]`: a `u32`, written as
/// an integer or as a number without a fractional part.
pub fn u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(value) = number.as_u64() {
        return u32::try_from(value)
            .map_err(|_| D::Error::invalid_value(Unexpected::Unsigned(value), &"a u32"));
    }
    match number.as_f64() {
        Some(value) if value.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&value) => {
            // Integral and in range: the conversion is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(value as u32)
        }
        Some(value) => Err(D::Error::invalid_value(Unexpected::Float(value), &"a u32")),
        None => Err(D::Error::custom("expected a u32")),
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct Counter {
        #[serde(deserialize_with = "super::u32")]
        n: u32,
    }

    fn parse(json: &str) -> Option<u32> {
        serde_json::from_str::<Counter>(json).ok().map(|c| c.n)
    }

    #[test]
    fn integral_numbers_are_integers_whatever_their_notation() {
        assert_eq!(parse(r#"{"n": 7}"#), Some(7));
        assert_eq!(parse(r#"{"n": 7.0}"#), Some(7));
        assert_eq!(parse(r#"{"n": 7e2}"#), Some(700));
        assert_eq!(parse(r#"{"n": 4294967295}"#), Some(u32::MAX));
        assert_eq!(parse(r#"{"n": 4294967295.0}"#), Some(u32::MAX));
        for refused in [
            r#"{"n": 7.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 4294967296.0}"#,
            r#"{"n": "7"}"#,
            r#"{"n": null}"#,
        ] {
            assert_eq!(parse(refused), None, "{refused}");
        }
    }
}
