//! Ansible's `sequence` lookup (`with_sequence`): numbers as formatted strings, from
//! `start=1 end=5 stride=1 format=%d` or `count=5`, or the shortcut `[start-]end[/stride][:format]`,
//! as ansible-core 2.19 reads them.

/// The items of one `with_sequence` term.
pub fn items(term: &str) -> Result<Vec<String>, String> {
    let spec = match shortcut(term) {
        Some(spec) => spec?,
        None => key_values(term)?,
    };
    spec.generate()
}

#[derive(Debug)]
struct Spec {
    start: i64,
    end: Option<i64>,
    count: Option<i64>,
    stride: i64,
    format: String,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            start: 1,
            end: None,
            count: None,
            stride: 1,
            format: "%d".into(),
        }
    }
}

impl Spec {
    fn generate(&self) -> Result<Vec<String>, String> {
        let end = match (self.end, self.count) {
            (None, None) => return Err("must specify count or end in with_sequence".into()),
            (Some(_), Some(_)) => {
                return Err("can't specify both count and end in with_sequence".into())
            }
            (_, Some(0)) => return Ok(Vec::new()),
            (_, Some(count)) => self.start + count * self.stride - 1,
            (Some(end), None) => end,
        };
        if self.stride > 0 && end < self.start {
            return Err("to count backwards make stride negative".into());
        }
        if self.stride < 0 && end > self.start {
            return Err("to count forward don't make stride negative".into());
        }
        if self.stride == 0 {
            return Ok(Vec::new());
        }
        if self.format.matches('%').count() != 1 {
            return Err(format!("bad formatting string: {}", self.format));
        }
        let mut out = Vec::new();
        let mut i = self.start;
        // Python's range(start, end + 1, stride), or end - 1 counting down
        while (self.stride > 0 && i <= end) || (self.stride < 0 && i >= end) {
            out.push(printf(&self.format, i)?);
            i += self.stride;
        }
        Ok(out)
    }
}

/// A number option, as ansible-core 2.19 converts it: decimal only (leading zeros are
/// decimal; its documentation's hex and octal forms are refused).
fn number(key: &str, text: &str) -> Result<i64, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "Config '{key}' for 'sequence' lookup plugin from 'Direct' has an invalid value: Invalid value provided for 'integer': '{text}'"
        )
    })
}

/// Whether `term` is the shortcut form `[start-]end[/stride][:format]`.
pub fn is_shortcut(term: &str) -> bool {
    shortcut(term).is_some()
}

/// `[start-]end[/stride][:format]`.
fn shortcut(term: &str) -> Option<Result<Spec, String>> {
    let (range, format) = match term.split_once(':') {
        Some((r, f)) => (r, Some(f)),
        None => (term, None),
    };
    let (bounds, stride) = match range.split_once('/') {
        Some((b, s)) => (b, Some(s)),
        None => (range, None),
    };
    let (start, end) = match bounds.split_once('-') {
        Some((s, e)) => (Some(s), e),
        None => (None, bounds),
    };
    // Ansible's shortcut number pattern, `0?x?[0-9a-f]+` (any case): it takes hex digits
    // and 0x.. numbers, which the conversion then refuses ("has an invalid value")
    let plain = |t: &str| {
        let t = t.to_ascii_lowercase();
        let t = t
            .strip_prefix('0')
            .filter(|r| r.starts_with('x'))
            .unwrap_or(&t);
        let t = t.strip_prefix('x').unwrap_or(t);
        !t.is_empty() && t.bytes().all(|c| c.is_ascii_hexdigit())
    };
    if !plain(end) || !start.is_none_or(plain) || !stride.is_none_or(plain) {
        return None;
    }
    if format.is_some_and(str::is_empty) {
        return None;
    }
    let build = || -> Result<Spec, String> {
        let mut spec = Spec {
            end: Some(number("end", end)?),
            ..Spec::default()
        };
        if let Some(s) = start {
            spec.start = number("start", s)?;
        }
        if let Some(s) = stride {
            spec.stride = number("stride", s)?;
        }
        if let Some(f) = format {
            spec.format = f.to_string();
        }
        Ok(spec)
    };
    Some(build())
}

/// `start=.. end=.. count=.. stride=.. format=..`.
fn key_values(term: &str) -> Result<Spec, String> {
    let mut spec = Spec::default();
    let words = shlex::split(term).ok_or_else(|| format!("cannot parse {term:?}"))?;
    let mut unknown = Vec::new();
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            unknown.push(word);
            continue;
        };
        match k {
            "start" => spec.start = number(k, v)?,
            "end" => spec.end = Some(number(k, v)?),
            "count" => spec.count = Some(number(k, v)?),
            "stride" => spec.stride = number(k, v)?,
            "format" => spec.format = v.to_string(),
            other => unknown.push(other.to_string()),
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unrecognized arguments to with_sequence: {unknown:?}"
        ));
    }
    Ok(spec)
}

/// Python's `format % i` for one conversion: `%d`, `%i`, `%x`, `%X`, `%o`, `%s`, with the
/// `0` and `-` flags and a width.
fn printf(format: &str, i: i64) -> Result<String, String> {
    let bad = || format!("problem formatting {i} with '{format}'");
    let (prefix, rest) = format.split_once('%').ok_or_else(bad)?;
    let flags: String = rest
        .chars()
        .take_while(|c| matches!(c, '0' | '-'))
        .collect();
    let rest = &rest[flags.len()..];
    let width: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let rest = &rest[width.len()..];
    let mut chars = rest.chars();
    let conversion = chars.next().ok_or_else(bad)?;
    let suffix = chars.as_str();
    let digits = match conversion {
        'd' | 'i' | 's' => i.to_string(),
        'x' => format!("{i:x}"),
        'X' => format!("{i:X}"),
        'o' => format!("{i:o}"),
        _ => return Err(bad()),
    };
    let width: usize = width.parse().unwrap_or(0);
    let padded = if flags.contains('-') {
        format!("{digits:<width$}")
    } else if flags.contains('0') && conversion != 's' {
        let (sign, body) = match digits.strip_prefix('-') {
            Some(b) => ("-", b),
            None => ("", digits.as_str()),
        };
        format!("{sign}{body:0>w$}", w = width.saturating_sub(sign.len()))
    } else {
        format!("{digits:>width$}")
    };
    Ok(format!("{prefix}{padded}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::items;

    #[test]
    fn the_documented_examples() {
        assert_eq!(items("5").unwrap(), ["1", "2", "3", "4", "5"]);
        assert_eq!(items("5-8").unwrap(), ["5", "6", "7", "8"]);
        assert_eq!(items("2-10/2").unwrap(), ["2", "4", "6", "8", "10"]);
        assert_eq!(
            items("4:host%02d").unwrap(),
            ["host01", "host02", "host03", "host04"]
        );
        assert_eq!(
            items("start=5 end=11 stride=2 format=0x%02x").unwrap(),
            ["0x05", "0x07", "0x09", "0x0b"]
        );
        assert_eq!(items("start=08 end=010").unwrap(), ["8", "9", "10"]);
        assert_eq!(items("count=5").unwrap(), ["1", "2", "3", "4", "5"]);
        assert_eq!(
            items("start=3840 count=4 format=%04x").unwrap(),
            ["0f00", "0f01", "0f02", "0f03"]
        );
        assert_eq!(
            items("start=0 count=5 stride=2").unwrap(),
            ["0", "2", "4", "6", "8"]
        );
        assert_eq!(
            items("start=10 end=1 stride=-3").unwrap(),
            ["10", "7", "4", "1"]
        );
        assert_eq!(items("count=0").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn bad_specs_say_why() {
        assert!(items("start=3").unwrap_err().contains("count or end"));
        assert!(items("end=3 count=2").unwrap_err().contains("both"));
        assert!(items("start=5 end=1").unwrap_err().contains("backwards"));
        assert!(items("end=3 format=%d%d")
            .unwrap_err()
            .contains("bad formatting"));
        assert!(items("end=3 size=2").unwrap_err().contains("unrecognized"));
        assert!(items("end=x")
            .unwrap_err()
            .contains("Invalid value provided for 'integer': 'x'"));
        assert!(items("start=0x0f00 count=4")
            .unwrap_err()
            .contains("Config 'start' for 'sequence' lookup plugin"));
    }
}
