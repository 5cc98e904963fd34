//! Parsing of Kubernetes resource quantities (`128Mi`, `100m`, `1.5G`, `2e3`) into plain numbers.
//!
//! The stress program takes plain integer bytes and the operator sizes volumes from the spec, so it
//! needs the numeric value of a quantity the API server already accepted. Kubernetes' own grammar:
//! `<sign><digits>[.<digits>][<binarySI>|<decimalSI>|e<exponent>]`.

use thiserror::Error;

/// Why a quantity string could not be turned into a number.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum QuantityError {
    /// The text does not follow the Kubernetes quantity grammar.
    #[error("`{0}` is not a Kubernetes quantity (expected e.g. 128Mi, 100m, 1G, 2e3)")]
    Invalid(String),
    /// The value does not fit in 64 bits.
    #[error("`{0}` is too large")]
    TooLarge(String),
    /// A negative value where only amounts make sense.
    #[error("`{0}` is negative")]
    Negative(String),
}

/// The value of `text` in thousandths (milli-units), rounded up, as Kubernetes rounds.
pub fn parse_milli(text: &str) -> Result<u128, QuantityError> {
    let invalid = || QuantityError::Invalid(text.to_owned());
    let trimmed = text.trim();
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(invalid());
    }
    // (multiplier numerator, power of ten) applied to the decimal number.
    let (binary, decimal_exp): (u128, i32) = match suffix {
        "" => (1, 0),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().map_err(|_| invalid())?;
            if !(-30..=30).contains(&exp) {
                return Err(QuantityError::TooLarge(text.to_owned()));
            }
            (1, exp)
        }
        _ => return Err(invalid()),
    };
    if fraction.len() > 30 {
        return Err(invalid());
    }
    let digits: String = format!("{whole}{fraction}");
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits
            .parse()
            .map_err(|_| QuantityError::TooLarge(text.to_owned()))?
    };
    // value = mantissa * binary * 10^(decimal_exp - fraction_len); in milli: exponent + 3.
    let exponent = decimal_exp + 3 - i32::try_from(fraction.len()).map_err(|_| invalid())?;
    let too_large = || QuantityError::TooLarge(text.to_owned());
    let scaled = mantissa.checked_mul(binary).ok_or_else(too_large)?;
    let milli = if exponent >= 0 {
        let factor = 10u128
            .checked_pow(exponent.unsigned_abs())
            .ok_or_else(too_large)?;
        scaled.checked_mul(factor).ok_or_else(too_large)?
    } else {
        let divisor = 10u128
            .checked_pow(exponent.unsigned_abs())
            .ok_or_else(too_large)?;
        scaled.div_ceil(divisor)
    };
    if negative && milli != 0 {
        return Err(QuantityError::Negative(text.to_owned()));
    }
    Ok(milli)
}

/// The value of `text` as a whole number (bytes, cores), rounded up.
pub fn parse_whole(text: &str) -> Result<u64, QuantityError> {
    let milli = parse_milli(text)?;
    u64::try_from(milli.div_ceil(1000)).map_err(|_| QuantityError::TooLarge(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_suffix_family() {
        assert_eq!(parse_whole("128Mi"), Ok(128 * 1024 * 1024));
        assert_eq!(parse_whole("1Gi"), Ok(1 << 30));
        assert_eq!(parse_whole("1G"), Ok(1_000_000_000));
        assert_eq!(parse_whole("1.5Gi"), Ok(1_610_612_736));
        assert_eq!(parse_whole("2e3"), Ok(2000));
        assert_eq!(parse_whole("1048576"), Ok(1_048_576));
        assert_eq!(parse_milli("100m"), Ok(100));
        assert_eq!(parse_milli("0.1"), Ok(100));
        assert_eq!(parse_milli("1"), Ok(1000));
        assert_eq!(parse_milli("0"), Ok(0));
        assert_eq!(parse_whole("1500m"), Ok(2), "rounded up like Kubernetes");
    }

    #[test]
    fn rejects_garbage_and_negative_amounts() {
        assert!(matches!(
            parse_whole("12Qi"),
            Err(QuantityError::Invalid(_))
        ));
        assert!(matches!(parse_whole(""), Err(QuantityError::Invalid(_))));
        assert!(matches!(parse_whole("Mi"), Err(QuantityError::Invalid(_))));
        assert!(matches!(
            parse_whole("-1Mi"),
            Err(QuantityError::Negative(_))
        ));
        assert!(matches!(
            parse_whole("1e99"),
            Err(QuantityError::TooLarge(_))
        ));
        assert!(matches!(
            parse_whole("99999Ei"),
            Err(QuantityError::TooLarge(_))
        ));
    }
}
