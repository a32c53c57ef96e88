//! Kubernetes-style quantities (`4Gi`, `512Mi`, `20G`, `1.5Gi`, `1073741824`) as a byte count.
//!
//! Bundles state memory and disk the way Kubernetes manifests do, so users write what they already
//! know. Only the suffixes that make sense for bytes are accepted: binary (`Ki`…`Ei`), decimal
//! (`k`, `M`…`E`) or none. Milli (`m`) and exponent forms are refused because a fraction of a
//! byte is always a typo.

use std::fmt;

/// A number of bytes, parsed from a Kubernetes quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

/// Why a quantity did not parse; the caller adds the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a quantity ({reason}); write a number with an optional suffix, like 4Gi, 512Mi or 20G"
)]
pub struct QuantityError {
    pub input: String,
    pub reason: &'static str,
}

const SUFFIXES: &[(&str, u64)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

impl Bytes {
    /// Parse `4Gi`, `20G`, `1.5Gi` or a plain byte count.
    pub fn parse(input: &str) -> Result<Bytes, QuantityError> {
        let err = |reason| QuantityError {
            input: input.to_string(),
            reason,
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(err("it is empty"));
        }
        // Binary suffixes are two characters and start with a decimal suffix letter, so try them first.
        let (number, multiplier) = SUFFIXES
            .iter()
            .find_map(|(suffix, mult)| text.strip_suffix(suffix).map(|n| (n, *mult)))
            .unwrap_or((text, 1));
        if number.is_empty() {
            return Err(err("the number is missing"));
        }
        if !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(err("unknown suffix or stray characters"));
        }
        let (whole, frac) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
            return Err(err("malformed number"));
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err("number too large"))?
        };
        let mut bytes = whole
            .checked_mul(multiplier)
            .ok_or_else(|| err("number too large"))?;
        if !frac.is_empty() {
            // Exact decimal arithmetic: frac digits / 10^len * multiplier, rounded up to a whole byte.
            let digits: u128 = frac.parse().map_err(|_| err("malformed number"))?;
            let scale = 10u128
                .checked_pow(frac.len() as u32)
                .ok_or_else(|| err("too many decimals"))?;
            let part = (digits * multiplier as u128).div_ceil(scale);
            bytes = bytes
                .checked_add(u64::try_from(part).map_err(|_| err("number too large"))?)
                .ok_or_else(|| err("number too large"))?;
        }
        Ok(Bytes(bytes))
    }
}

impl fmt::Display for Bytes {
    /// Human form with a binary suffix and one decimal, e.g. `5.8Gi`; exact values print without decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: &[(&str, u64)] = &[
            ("Ei", 1 << 60),
            ("Pi", 1 << 50),
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= *size {
                return if self.0.is_multiple_of(*size) {
                    write!(f, "{}{unit}", self.0 / size)
                } else {
                    write!(f, "{:.1}{unit}", self.0 as f64 / *size as f64)
                };
            }
        }
        write!(f, "{}B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        let cases: &[(&str, u64)] = &[
            ("4Gi", 4 << 30),
            ("512Mi", 512 << 20),
            ("20G", 20_000_000_000),
            ("1.5Gi", 3 << 29),
            ("1073741824", 1 << 30),
            ("64Ki", 65536),
            ("2k", 2000),
            ("0.5Ki", 512),
            (" 6Gi ", 6 << 30),
            ("1Ei", 1 << 60),
        ];
        for (input, want) in cases {
            assert_eq!(Bytes::parse(input), Ok(Bytes(*want)), "{input}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_byte_quantity() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("Gi", "missing"),
            ("4GB", "suffix"),
            ("4gi", "suffix"),
            ("500m", "suffix"),
            ("-1Gi", "suffix"),
            ("1e9", "suffix"),
            ("1.2.3Gi", "malformed"),
            ("99999999999Ei", "too large"),
            (".", "malformed"),
        ];
        for (input, reason) in cases {
            let err = Bytes::parse(input).unwrap_err();
            assert!(err.reason.contains(reason), "{input}: {err}");
            assert!(err.to_string().contains("4Gi"), "error shows an example");
        }
    }

    #[test]
    fn displays_with_binary_suffix() {
        assert_eq!(Bytes(6 << 30).to_string(), "6Gi");
        assert_eq!(Bytes((6 << 30) - (200 << 20)).to_string(), "5.8Gi");
        assert_eq!(Bytes(100).to_string(), "100B");
    }
}
