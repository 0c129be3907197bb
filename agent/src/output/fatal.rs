//! The run's final error as ansible-core prints it (`[ERROR]:`, and for an error about a
//! place in a file its `Origin:` and source lines).

/// How the run's final error is printed, as ansible-core prints it: a message that starts
/// with the place it is about (`file:line:col: ` or `file:line: `, a file that exists) is
/// `[ERROR]: message`, then `Origin: file:line:col` and the source lines with a caret.
pub fn render(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    match located(&text) {
        Some((origin, msg)) => {
            let mut out = format!("[ERROR]: {msg}\nOrigin: {origin}\n");
            if let Some(snippet) = super::text::snippet(&origin) {
                out.push_str(&format!("\n{snippet}\n"));
            }
            out
        }
        None => format!("[ERROR]: {text}"),
    }
}

/// `file:line[:col]: message` split into the origin and the message.
fn located(text: &str) -> Option<(crate::yaml::TaskOrigin, &str)> {
    let (place, msg) = text.split_once(": ")?;
    let mut parts = place.rsplitn(3, ':');
    let last: usize = parts.next()?.parse().ok()?;
    let middle = parts.next()?;
    let (file, line, col) = match middle.parse::<usize>() {
        Ok(line) => (parts.next()?, line, last),
        // `file:line`: the middle part is the file (which may not hold a ':')
        Err(_) if parts.next().is_none() => (middle, last, 1),
        Err(_) => return None,
    };
    let path = std::path::Path::new(file);
    if !path.is_absolute() || !path.is_file() || line == 0 || msg.is_empty() {
        return None;
    }
    let origin = crate::yaml::TaskOrigin {
        file: std::sync::Arc::new(path.to_path_buf()),
        line,
        col: col.max(1),
    };
    Some((origin, msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::syntax;

    #[test]
    fn located_errors_print_their_origin_and_source_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yml");
        std::fs::write(&file, "- hosts: all\n  tasks:\n    - debug: msg=1\n").unwrap();
        let err = syntax(format!("{}:3:7: bad thing", file.display()));
        let shown = render(&err);
        assert!(shown.starts_with("[ERROR]: bad thing\nOrigin: "), "{shown}");
        assert!(
            shown.contains(&format!("Origin: {}:3:7\n", file.display())),
            "{shown}"
        );
        assert!(
            shown.contains("3     - debug: msg=1\n        ^ column 7"),
            "{shown}"
        );
        let err = syntax(format!("{}:2: other", file.display()));
        assert!(render(&err).starts_with("[ERROR]: other\nOrigin: "));
        // not a file, or no place: as it is
        assert_eq!(
            render(&syntax("/nonexistent.yml:1:1: x")),
            "[ERROR]: /nonexistent.yml:1:1: x"
        );
        assert_eq!(render(&syntax("plain: words")), "[ERROR]: plain: words");
    }
}
