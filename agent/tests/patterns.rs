//! Host-pattern edge cases; every expectation was taken from `ansible --list-hosts` (ansible-core
//! 2.19) on the same inventory.

use etcd_agent::inventory::{pattern, Inventory};

fn inv() -> (tempfile::TempDir, Inventory) {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("hosts.ini");
    std::fs::write(
        &p,
        "solo\n[etcd]\netcd[1:3]\n[web]\nweb1\netcd1\n[prod:children]\netcd\nweb\n",
    )
    .expect("write inventory");
    let inv = Inventory::load(&[p.display().to_string()]).expect("load inventory");
    (dir, inv)
}

#[test]
fn edge_cases_match_ansible() {
    let (_dir, inv) = inv();
    let cases: &[(&str, &[&str])] = &[
        ("all", &["solo", "etcd1", "etcd2", "etcd3", "web1"]),
        ("*", &["solo", "etcd1", "etcd2", "etcd3", "web1"]),
        ("all:!etcd", &["solo", "web1"]),
        ("etcd:&prod:!etcd3", &["etcd1", "etcd2"]),
        ("prod[0:1]", &["etcd1", "etcd2"]),
        ("etcd[1:]", &["etcd2", "etcd3"]),
        ("web,etcd[0]", &["web1", "etcd1"]),
        ("etcd1,etcd1", &["etcd1"]),
        ("ungrouped", &["solo"]),
        ("~etcd[23]", &["etcd2", "etcd3"]),
        ("etcd*:!*3", &["etcd1", "etcd2"]),
        // exclusions apply after every inclusion, wherever they are written
        ("!web:etcd", &["etcd2", "etcd3"]),
        ("prod:!web:&etcd", &["etcd2", "etcd3"]),
        ("etcd[5]", &[]),
        // names are case sensitive
        ("ETCD1", &[]),
        ("web:etcd", &["web1", "etcd1", "etcd2", "etcd3"]),
        ("etcd[0],web[0]", &["etcd1", "web1"]),
        ("&web", &["etcd1", "web1"]),
    ];
    let mut wrong = Vec::new();
    for (p, want) in cases {
        match pattern::resolve(&inv, p) {
            Ok(got) if got == *want => {}
            Ok(got) => wrong.push(format!("{p}: ansible {want:?}, agent {got:?}")),
            Err(e) => wrong.push(format!("{p}: ansible {want:?}, agent error {e:#}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "patterns differing from Ansible:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn split_keeps_brackets_and_commas() {
    assert_eq!(pattern::split("etcd[0:1]:web"), ["etcd[0:1]", "web"]);
    assert_eq!(pattern::split("a, b ,c"), ["a", "b", "c"]);
    assert_eq!(pattern::split("a:&b:!c"), ["a", "&b", "!c"]);
    assert!(pattern::split("").is_empty());
}
