//! Human durations in drill files: `"500ms"`, `"30s"`, `"45m"`, `"1h30m"`, `"30d"`.

use std::time::Duration;

/// The longest duration accepted anywhere (ten years): far beyond any drill, report window or
/// backoff, and small enough that adding a few of them to a clock reading cannot overflow.
pub const MAX: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Parses a duration made of one or more `<integer><unit>` parts, units `ms`, `s`, `m`, `h`, `d`,
/// of at most [`MAX`].
pub fn parse(text: &str) -> Result<Duration, String> {
    let expected = "expected a duration such as \"500ms\", \"30s\", \"45m\" or \"1h30m\"";
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("empty duration; {expected}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("`{text}` is not a duration; {expected}"));
        }
        let value: u64 = rest[..digits].parse().map_err(|_| format!("`{text}` is too large a duration"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            "" => return Err(format!("`{text}` has no unit; {expected}")),
            unit => return Err(format!("`{text}` has an unknown unit `{unit}`; {expected}")),
        };
        total = total.checked_add(part).ok_or_else(|| format!("`{text}` is too large a duration"))?;
        rest = &rest[unit_len..];
    }
    if total > MAX {
        return Err(format!("`{text}` is too large a duration (at most 10 years, `3650d`)"));
    }
    Ok(total)
}

/// Formats a duration the way drill files write them (`1h30m`, `45s`, `250ms`).
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let secs = millis / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (value, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if value > 0 {
            out += &value.to_string();
            out.push(unit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(" 45m "), Ok(Duration::from_secs(2700)));
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn rejects_with_what_is_expected() {
        assert!(parse("10").unwrap_err().contains("has no unit"));
        assert!(parse("10 minutes").unwrap_err().contains("unknown unit ` minutes`"));
        assert!(parse("m").unwrap_err().contains("is not a duration"));
        assert!(parse("").unwrap_err().contains("empty duration"));
        assert_eq!(parse("3650d"), Ok(MAX));
        for huge in ["3651d", "99999999999999999d", "18446744073709551616s", "999999999999999h1s"] {
            assert!(parse(huge).unwrap_err().contains("too large a duration"), "{huge}");
        }
    }
}
