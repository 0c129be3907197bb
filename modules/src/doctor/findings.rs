//! A finding of the doctor: how bad, which member, what, the evidence, and
//! the fix as a command an operator can run; plus the findings table.

use serde_json::{json, Value};

/// How bad a finding is. The playbook fails when any is critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The cluster is down, unsafe or about to be: act now.
    Critical,
    /// Not an outage, but it will bite (drift, a learner left behind).
    Warning,
}

impl Severity {
    /// `critical` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// How to fix a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// One of the db-operations playbooks with extra variables.
    Playbook {
        /// File name in the playbook directory.
        file: &'static str,
        /// `-e key=value` pairs.
        vars: Vec<(&'static str, VarValue)>,
    },
    /// Fixes run one after the other.
    Sequence(Vec<Fix>),
    /// An ad-hoc module run on one inventory host (`ansible HOST -m MODULE -a ARGS`).
    OnHost {
        /// Inventory host.
        host: String,
        /// The module (`ansible.builtin.command`, `etcd_member`).
        module: &'static str,
        /// Its arguments.
        args: String,
    },
    /// A command for the operator's shell, as it is.
    Shell(String),
}

/// The value of a fix's `-e key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarValue {
    /// A value as it is (quoted for the shell).
    Text(String),
    /// The newest file in `dir` matching the shell glob `pattern`, found by
    /// the operator's shell when the command runs (`$(ls -t ... | head -n 1)`):
    /// a snapshot that an earlier step of the same command line writes.
    NewestFile {
        /// The directory.
        dir: String,
        /// The file name pattern, as the shell globs it (`etcd-snapshot-*.db`).
        pattern: &'static str,
    },
}

impl From<String> for VarValue {
    fn from(text: String) -> Self {
        VarValue::Text(text)
    }
}

impl From<&str> for VarValue {
    fn from(text: &str) -> Self {
        VarValue::Text(text.to_string())
    }
}

impl VarValue {
    /// `key=value` as one shell word: quoted text, or a double-quoted word
    /// whose command substitution the shell runs.
    fn shell_word(&self, key: &str) -> String {
        match self {
            VarValue::Text(text) => shell_quote(&format!("{key}={text}")),
            VarValue::NewestFile { dir, pattern } => format!(
                "\"{key}=$(ls -t {}/{pattern} | head -n 1)\"",
                shell_quote(dir.trim_end_matches('/'))
            ),
        }
    }
}

/// Where the fix commands point: the inventory and the playbook directory.
#[derive(Debug, Clone)]
pub struct FixContext {
    /// The inventory given to `ansible-playbook -i`.
    pub inventory: String,
    /// The directory of the db-operations playbooks.
    pub playbook_dir: String,
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl Fix {
    /// The fix as one runnable command line.
    pub fn command(&self, ctx: &FixContext) -> String {
        match self {
            Fix::Playbook { file, vars } => {
                let mut line = format!(
                    "ansible-playbook -i {} {}",
                    shell_quote(&ctx.inventory),
                    shell_quote(&format!(
                        "{}/{file}",
                        ctx.playbook_dir.trim_end_matches('/')
                    ))
                );
                for (key, value) in vars {
                    line.push_str(" -e ");
                    line.push_str(&value.shell_word(key));
                }
                line
            }
            Fix::Sequence(steps) => steps
                .iter()
                .map(|s| s.command(ctx))
                .collect::<Vec<_>>()
                .join(" && "),
            Fix::OnHost { host, module, args } => format!(
                "ansible -i {} {} -m {module} -a {}",
                shell_quote(&ctx.inventory),
                shell_quote(host),
                shell_quote(args)
            ),
            Fix::Shell(line) => line.clone(),
        }
    }

    /// The playbook files the fix runs, for machine checks.
    pub fn playbooks(&self) -> Vec<&'static str> {
        match self {
            Fix::Playbook { file, .. } => vec![file],
            Fix::Sequence(steps) => steps.iter().flat_map(Fix::playbooks).collect(),
            _ => Vec::new(),
        }
    }
}

/// One thing wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// Stable code (`member_down`, `time_travel`, `nospace`, ...).
    pub code: &'static str,
    /// Member name (or the inventory host, or `cluster`).
    pub member: String,
    /// The inventory host, when there is one.
    pub host: Option<String>,
    /// What is wrong, in a sentence.
    pub finding: String,
    /// The exact log line or figure that shows it.
    pub evidence: String,
    /// How to fix it.
    pub fix: Option<Fix>,
}

impl Finding {
    /// The finding as JSON, the fix rendered as a command.
    pub fn to_json(&self, ctx: &FixContext) -> Value {
        json!({
            "severity": self.severity.as_str(),
            "code": self.code,
            "member": self.member,
            "host": self.host,
            "finding": self.finding,
            "evidence": self.evidence,
            "fix": self.fix.as_ref().map(|f| f.command(ctx)),
            "fix_playbooks": self.fix.as_ref().map(Fix::playbooks).unwrap_or_default(),
        })
    }
}

/// The findings table as lines: a header, then one block per finding.
/// Long cells do not fit a terminal's columns, so each finding is a block
/// whose first line is `SEVERITY  MEMBER  FINDING`.
pub fn table(findings: &[Finding], ctx: &FixContext) -> Vec<String> {
    if findings.is_empty() {
        return vec!["no findings: every member is healthy and consistent".into()];
    }
    let width = findings
        .iter()
        .map(|f| f.member.chars().count())
        .max()
        .unwrap_or(0)
        .max("MEMBER".len());
    let mut lines = vec![format!("{:<8}  {:<width$}  FINDING", "SEVERITY", "MEMBER")];
    for f in findings {
        lines.push(format!(
            "{:<8}  {:<width$}  {}",
            f.severity.as_str(),
            f.member,
            f.finding
        ));
        lines.push(format!(
            "{:<8}  {:<width$}    evidence: {}",
            "", "", f.evidence
        ));
        let fix = f
            .fix
            .as_ref()
            .map_or_else(|| "(none known)".to_string(), |x| x.command(ctx));
        lines.push(format!("{:<8}  {:<width$}    fix: {fix}", "", ""));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> FixContext {
        FixContext {
            inventory: "inv/hosts.ini".into(),
            playbook_dir: "playbooks/db-operations/".into(),
        }
    }

    #[test]
    fn fixes_render_as_commands() {
        let replace = Fix::Playbook {
            file: "etcd_replace_member.yml",
            vars: vec![("etcd_replace_host", "etcd2".into())],
        };
        assert_eq!(
            replace.command(&ctx()),
            "ansible-playbook -i inv/hosts.ini playbooks/db-operations/etcd_replace_member.yml -e etcd_replace_host=etcd2"
        );
        let start = Fix::OnHost {
            host: "etcd2".into(),
            module: "ansible.builtin.command",
            args: "systemctl start etcd".into(),
        };
        assert_eq!(
            start.command(&ctx()),
            "ansible -i inv/hosts.ini etcd2 -m ansible.builtin.command -a 'systemctl start etcd'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        let restore = Fix::Playbook {
            file: "etcd_restore.yml",
            vars: vec![(
                "etcd_restore_snapshot",
                VarValue::NewestFile {
                    dir: "/srv/my backups/".into(),
                    pattern: "etcd-snapshot-*.db",
                },
            )],
        };
        assert_eq!(
            restore.command(&ctx()),
            r#"ansible-playbook -i inv/hosts.ini playbooks/db-operations/etcd_restore.yml -e "etcd_restore_snapshot=$(ls -t '/srv/my backups'/etcd-snapshot-*.db | head -n 1)""#
        );
        let both = Fix::Sequence(vec![replace.clone(), replace]);
        assert_eq!(both.playbooks().len(), 2);
        assert!(both.command(&ctx()).contains(" && "));
    }

    #[test]
    fn the_table_has_one_block_per_finding() {
        let f = Finding {
            severity: Severity::Critical,
            code: "member_down",
            member: "m2".into(),
            host: Some("m2".into()),
            finding: "etcd is not running".into(),
            evidence: "inactive".into(),
            fix: None,
        };
        let lines = table(&[f.clone(), f], &ctx());
        assert_eq!(lines.len(), 7);
        assert!(lines[1].starts_with("critical  m2"), "{lines:?}");
        assert!(lines[3].contains("fix: (none known)"));
        assert_eq!(table(&[], &ctx()).len(), 1);
    }
}
