//! The validated request of `etcd_member`: which member, what state, and
//! the value checks that serde and the declared rules cannot make.

use std::collections::BTreeSet;
use std::time::Duration;

use super::args::{IdArg, MemberArgs, State};
use crate::connection::member_id_hex;
use crate::protocol::lenient::List;
use crate::protocol::{Choice, Failure};

/// The validated request.
#[derive(Debug)]
pub(super) struct Request {
    /// The desired state.
    pub state: State,
    /// Member name, trimmed.
    pub name: Option<String>,
    /// Member id.
    pub id: Option<u64>,
    /// With an integer id: its digits read as hex, to catch an etcdctl hex
    /// id that YAML turned into an integer (`id: 1234567890123456`).
    pub id_as_hex: Option<u64>,
    /// Peer URLs, normalized.
    pub peer_urls: Vec<String>,
    /// Add as a learner.
    pub learner: bool,
    /// Remove even without quorum.
    pub force: bool,
    /// How long to retry what etcd refuses for now.
    pub wait_timeout: Duration,
    /// Members that must not receive leadership (names, hex ids, peer URLs).
    pub avoid: Vec<String>,
}

impl Request {
    /// Validates the argument values, after the protocol has checked the
    /// declared rules (which options each state needs, `id` only to select).
    pub fn from_args(args: MemberArgs) -> Result<Request, Failure> {
        let state = args.state;
        let state_name = state.name();
        let name = args.name.map(|n| n.0.trim().to_string());
        if name.as_deref() == Some("") {
            return Err(Failure::new("argument 'name' is invalid: it is empty"));
        }
        let (id, id_as_hex) = match &args.id {
            None => (None, None),
            Some(arg) => {
                let (id, as_hex) = parse_id(arg).ok_or_else(|| {
                    Failure::new(format!(
                        "argument 'id' is invalid: {} is not a member id (a hex string as etcdctl member list prints it, or a positive integer)",
                        match arg {
                            IdArg::Hex(s) => format!("{s:?}"),
                            IdArg::Int(i) => i.to_string(),
                        }
                    ))
                })?;
                (Some(id), as_hex)
            }
        };
        let peer_urls = match args.peer_urls {
            None => Vec::new(),
            Some(List(urls)) => {
                if urls.is_empty() {
                    return Err(Failure::new("argument 'peer_urls' is invalid: it is empty"));
                }
                urls.iter()
                    .map(|u| {
                        let u = normalize_url(u);
                        if u.starts_with("http://") || u.starts_with("https://") {
                            Ok(u)
                        } else {
                            Err(Failure::new(format!(
                                "argument 'peer_urls' is invalid: {u:?} is not an http:// or https:// URL"
                            )))
                        }
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        let learner = args.learner.0;
        let force = args.force.0;
        let avoid: Vec<String> = args
            .avoid
            .map(|List(v)| {
                v.iter()
                    .map(|a| normalize_url(a))
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if !avoid.is_empty() && state != State::Absent {
            return Err(Failure::new(format!(
                "avoid is only used with state=absent, not state={state_name}"
            )));
        }

        if learner && state != State::Present {
            return Err(Failure::new(format!(
                "learner is only used with state=present, not state={state_name}"
            )));
        }
        if force && state != State::Absent {
            return Err(Failure::new(format!(
                "force is only used with state=absent, not state={state_name}"
            )));
        }
        Ok(Request {
            state,
            name,
            id,
            id_as_hex,
            peer_urls,
            learner,
            force,
            wait_timeout: args.wait_timeout.0,
            avoid,
        })
    }

    /// How the request names the member, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(name) = &self.name {
            parts.push(format!("name {name}"));
        }
        if let Some(id) = self.id {
            parts.push(format!("id {}", member_id_hex(id)));
        }
        if !self.peer_urls.is_empty() {
            parts.push(format!("peer URLs {}", self.peer_urls.join(",")));
        }
        parts.join(", ")
    }
}

/// A member id from a hex string or a decimal integer (never 0), and for
/// an integer, its digits read as hex when they can be.
fn parse_id(arg: &IdArg) -> Option<(u64, Option<u64>)> {
    match arg {
        IdArg::Hex(s) => {
            let s = s.trim();
            let hex = s
                .strip_prefix("0x")
                .or_else(|| s.strip_prefix("0X"))
                .unwrap_or(s);
            if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u64::from_str_radix(hex, 16)
                .ok()
                .filter(|id| *id != 0)
                .map(|id| (id, None))
        }
        IdArg::Int(0) => None,
        IdArg::Int(i) => Some((*i, u64::from_str_radix(&i.to_string(), 16).ok())),
    }
}

/// URLs compare without a trailing slash, as etcd compares them.
pub(super) fn normalize_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// A set of URLs, normalized.
pub(super) fn url_set(urls: &[String]) -> BTreeSet<String> {
    urls.iter().map(|u| normalize_url(u)).collect()
}

/// The request for these arguments, parsed as the protocol parses them
/// (conversions, declared defaults, choices and rules), for tests.
#[cfg(test)]
pub(super) fn parsed(args: &serde_json::Value) -> Result<Request, String> {
    let parsed = crate::protocol::parse_args::<super::EtcdMember>(&args.to_string())
        .map_err(|e| e.to_string())?;
    Request::from_args(parsed.module_args).map_err(|f| f.msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn request(args: Value) -> Result<Request, String> {
        parsed(&args)
    }

    #[test]
    fn arguments_are_checked_per_state() {
        let r = request(json!({"name": "m3", "peer_urls": "http://10.0.0.4:2380/"})).unwrap();
        assert_eq!(r.state, State::Present);
        assert_eq!(r.peer_urls, vec!["http://10.0.0.4:2380"]);
        assert_eq!(r.wait_timeout, Duration::from_secs(60));
        assert!(!r.learner && !r.force);
        let r = request(json!({"state": "absent", "id": "8e9e05c52164694d"})).unwrap();
        assert_eq!(r.id, Some(0x8e9e05c52164694d));
        assert!(
            request(json!({"state": "present", "peer_urls": ["http://a:1"]}))
                .unwrap_err()
                .contains("missing: name")
        );
        assert!(request(json!({"state": "promoted"}))
            .unwrap_err()
            .contains("any of the following are missing: name, id, peer_urls"));
        assert!(
            request(json!({"name": "m", "peer_urls": "http://a:1", "id": "1"}))
                .unwrap_err()
                .contains("id cannot be used with state=present")
        );
        assert!(
            request(json!({"state": "absent", "name": "m", "learner": true}))
                .unwrap_err()
                .contains("learner is only used with state=present")
        );
        // Options that change nothing when false stay accepted with any state.
        let r = request(json!({"state": "absent", "name": "m", "learner": false})).unwrap();
        assert!(!r.learner);
        let r =
            request(json!({"state": "leader", "name": "m", "force": "no", "avoid": []})).unwrap();
        assert!(!r.force && r.avoid.is_empty());
        // An explicit null is an omitted option.
        let r = request(json!({"state": null, "name": "m", "peer_urls": "http://a:1", "id": null}))
            .unwrap();
        assert_eq!((r.state, r.id), (State::Present, None));
        assert!(request(json!({"state": "gone", "name": "m"}))
            .unwrap_err()
            .contains("value of state must be one of: present, absent, promoted, leader"));
        assert!(request(json!({"state": "absent", "id": "xyz"}))
            .unwrap_err()
            .contains("is not a member id"));
    }

    #[test]
    fn ids_are_hex_strings_or_integers_and_names_may_be_numbers() {
        let r = request(json!({"state": "absent", "id": "8e9e05c52164694d"})).unwrap();
        assert_eq!(r.id, Some(0x8e9e05c52164694d));
        assert_eq!(r.id_as_hex, None);
        let r = request(json!({"state": "absent", "id": "0x10"})).unwrap();
        assert_eq!(r.id, Some(16));
        // etcdctl -w json prints ids as decimal integers.
        let r = request(json!({"state": "absent", "id": 10276657743932975437u64})).unwrap();
        assert_eq!(r.id, Some(10276657743932975437));
        let r = request(json!({"state": "absent", "id": 123})).unwrap();
        assert_eq!((r.id, r.id_as_hex), (Some(123), Some(0x123)));
        for bad in [
            json!("xyz"),
            json!(""),
            json!("0"),
            json!(0),
            json!(-5),
            json!("12 34"),
        ] {
            let e = request(json!({"state": "absent", "id": bad})).unwrap_err();
            assert!(e.contains("not a member id"), "{bad}: {e}");
        }
        let r = request(json!({"state": "absent", "name": 5})).unwrap();
        assert_eq!(r.name.as_deref(), Some("5"));
        let r = request(json!({"state": "absent", "name": 1.0})).unwrap();
        assert_eq!(r.name.as_deref(), Some("1.0"));
        let r = request(json!({"state": "absent", "name": "m5", "avoid": "m3,http://h:2380/"}))
            .unwrap();
        assert_eq!(r.avoid, vec!["m3", "http://h:2380"]);
        assert!(
            request(json!({"state": "leader", "name": "m5", "avoid": ["m3"]}))
                .unwrap_err()
                .contains("avoid is only used with state=absent")
        );
    }
}
