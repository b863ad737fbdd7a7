//! Sizes as people write and read them: `parse_size` turns what an operator types ("35M", "50G",
//! "500k", "1024") into bytes for `setup` on the command line and in the API, and `human_bytes`
//! shows a byte count the way every table, line and report of postflytt does ("1.5 GB"). Both use
//! binary units (1K = 1024 bytes), as mail servers' quotas and size limits do. `now` is the clock every
//! timestamp in the store and the status reads (seconds since the Unix epoch).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};

/// Seconds since the Unix epoch, as every timestamp in the store and the status is kept.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// "35M", "2G", "500k", "1024" (bytes); binary units. A trailing "B" or "iB" is allowed ("35MB",
/// "35MiB"), and so is a fraction ("1.5G").
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_uppercase();
    let t = t.trim_end_matches('B').trim_end_matches('I');
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len()));
    let value: f64 = digits.parse().map_err(|_| anyhow!("{text:?} is not a size: write e.g. 35M or 50G"))?;
    let factor = match unit.trim() {
        "" => 1u64,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        other => bail!("{text:?}: unknown unit {other:?}; use K, M, G or T"),
    };
    Ok((value * factor as f64) as u64)
}

/// A size the operator may also remove: a size ("25M", "500G") or "off" (also "none", empty) for
/// None. `flag` names the setting in a refusal; 0 is refused (a limit of nothing is a mistake).
pub fn parse_optional_size(flag: &str, text: &str) -> Result<Option<u64>> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") || text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bytes = parse_size(text).map_err(|e| anyhow!("{flag}: {e}"))?;
    if bytes == 0 {
        bail!("{flag} 0 would allow nothing; give a size such as 25M or 500G, or off to remove it");
    }
    Ok(Some(bytes))
}

/// A duration as an operator writes it, in seconds: "3600" or "90s", "15m", "24h", "2d" (also
/// "15min", "24 h"); whole numbers only, so "1.5h" is written "90m".
pub fn parse_duration(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let value: i64 = digits.parse().map_err(|_| anyhow!("{text:?} is not a duration: write e.g. 900, 15m, 24h or 2d"))?;
    let factor = match unit.trim() {
        "" | "s" | "sec" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => bail!("{text:?}: unknown unit {other:?}; use s, m, h or d (e.g. 15m, 24h)"),
    };
    value.checked_mul(factor).ok_or_else(|| anyhow!("{text:?} is too long"))
}

/// A byte count with one decimal in the largest binary unit up to GB: "512 B", "1.5 KB", "35.0 MB".
pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.1} GB", n as f64 / (1u64 << 30) as f64)
    } else if n >= 1 << 20 {
        format!("{:.1} MB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read() {
        for (text, seconds) in [("900", 900), ("90s", 90), ("15m", 900), ("15 min", 900), ("24h", 86_400), ("2d", 172_800), (" 0 ", 0)] {
            assert_eq!(parse_duration(text).unwrap(), seconds, "{text:?}");
        }
        for (text, says) in
            [("soon", "is not a duration"), ("1.5h", "unknown unit \".5h\""), ("5w", "unknown unit"), ("-5m", "is not a duration")]
        {
            let err = parse_duration(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn sizes_are_read() {
        for (text, bytes) in [
            ("1024", 1024),
            ("0", 0),
            ("500k", 500 << 10),
            ("500K", 500 << 10),
            ("35M", 35 << 20),
            ("35MB", 35 << 20),
            ("35MiB", 35 << 20),
            ("  2 g ", 2 << 30),
            ("50G", 50 << 30),
            ("1.5G", 3 << 29),
            ("1T", 1 << 40),
            ("7B", 7),
        ] {
            assert_eq!(parse_size(text).unwrap(), bytes, "{text:?}");
        }
    }

    #[test]
    fn sizes_that_are_not_say_how_to_write_one() {
        for (text, says) in [
            ("", "is not a size: write e.g. 35M or 50G"),
            ("abc", "is not a size"),
            ("B", "is not a size"),
            ("1.2.3M", "is not a size"),
            ("-5M", "is not a size"),
            ("5X", "unknown unit \"X\"; use K, M, G or T"),
            ("5 PB", "unknown unit \"P\""),
        ] {
            let err = parse_size(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn byte_counts_are_shown() {
        for (bytes, shown) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KB"),
            (1536, "1.5 KB"),
            ((1 << 20) - 1, "1024.0 KB"),
            (35 << 20, "35.0 MB"),
            (3 << 29, "1.5 GB"),
            (2 << 40, "2048.0 GB"),
        ] {
            assert_eq!(human_bytes(bytes), shown, "{bytes}");
        }
    }
}
