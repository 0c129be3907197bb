//! Host range expansion: `etcd[01:03]`, `web[a:c]`, `n[1:9:2]`, as Ansible's INI/YAML readers do.

use anyhow::{anyhow, Result};

/// Expands every `[start:end(:step)]` range in a host pattern; names without ranges pass through.
pub fn expand(name: &str) -> Result<Vec<String>> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_string()]);
    };
    let close = name[open..]
        .find(']')
        .map(|i| i + open)
        .ok_or_else(|| anyhow!("unbalanced '[' in host range {name:?}"))?;
    let head = &name[..open];
    let spec = &name[open + 1..close];
    let tail = &name[close + 1..];
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return Err(anyhow!(
            "bad host range {name:?}: expected [start:end] or [start:end:step]"
        ));
    }
    let (beg, end) = (parts[0], parts[1]);
    let step: usize = match parts.get(2) {
        Some(s) => s
            .parse()
            .map_err(|_| anyhow!("bad step in host range {name:?}"))?,
        None => 1,
    };
    if step == 0 {
        return Err(anyhow!("bad step in host range {name:?}"));
    }
    let mut items = Vec::new();
    let alpha = |s: &str| s.len() == 1 && s.chars().all(|c| c.is_ascii_alphabetic());
    if alpha(beg) && alpha(end) {
        let (b, e) = (beg.as_bytes()[0], end.as_bytes()[0]);
        if b > e {
            return Err(anyhow!("host range {name:?} runs backwards"));
        }
        for c in (b..=e).step_by(step) {
            items.push((c as char).to_string());
        }
    } else {
        let b: usize = if beg.is_empty() {
            0
        } else {
            beg.parse()
                .map_err(|_| anyhow!("bad start in host range {name:?}"))?
        };
        let e: usize = end
            .parse()
            .map_err(|_| anyhow!("bad end in host range {name:?}"))?;
        if b > e {
            return Err(anyhow!("host range {name:?} runs backwards"));
        }
        let width = if beg.starts_with('0') { beg.len() } else { 0 };
        for n in (b..=e).step_by(step) {
            items.push(format!("{n:0width$}"));
        }
    }
    let mut out = Vec::new();
    for item in items {
        for rest in expand(tail)? {
            out.push(format!("{head}{item}{rest}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn numeric_alpha_step() {
        assert_eq!(
            expand("etcd[01:03]").unwrap(),
            ["etcd01", "etcd02", "etcd03"]
        );
        assert_eq!(expand("w[a:c].x").unwrap(), ["wa.x", "wb.x", "wc.x"]);
        assert_eq!(expand("n[1:5:2]").unwrap(), ["n1", "n3", "n5"]);
        assert_eq!(expand("plain").unwrap(), ["plain"]);
        assert!(expand("bad[3:1]").is_err());
    }
}
