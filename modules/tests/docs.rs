//! Each module's documentation is generated from its declaration; these
//! tests keep the declaration in step with the argument structs (names;
//! every default deserializes into its field; every choice deserializes
//! into its enum and a non-choice is refused; rules name declared options:
//! see `doc_drift`) and the committed ansible-doc sidecar files in step
//! with the declaration.

use etcd_modules::protocol::{doc_drift, sidecar_yaml, Module};
use std::path::PathBuf;

fn check<M: Module>() {
    let drift = doc_drift::<M>();
    assert!(drift.is_empty(), "documentation drift: {drift:#?}");
    let sidecar = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../playbooks/library")
        .join(format!("{}.yml", M::NAME));
    let generated = sidecar_yaml::<M>();
    let trailing: Vec<&str> = generated
        .lines()
        .filter(|l| l.ends_with(' ') || l.ends_with('\t'))
        .collect();
    assert!(
        trailing.is_empty(),
        "{} --doc writes lines with trailing whitespace: {trailing:?}",
        M::NAME
    );
    let committed = std::fs::read_to_string(&sidecar).unwrap_or_default();
    assert!(
        committed == sidecar_yaml::<M>(),
        "{} is stale: run scripts/update-module-docs",
        sidecar.display()
    );
}

#[test]
fn etcd_health_docs_match_its_declaration() {
    check::<etcd_modules::health::Health>();
}

#[test]
fn etcd_member_docs_match_its_declaration() {
    check::<etcd_modules::member::EtcdMember>();
}

#[test]
fn etcd_snapshot_docs_match_its_declaration() {
    check::<etcd_modules::snapshot::Snapshot>();
}

#[test]
fn etcd_restore_docs_match_its_declaration() {
    check::<etcd_modules::restore::Restore>();
}

#[test]
fn etcd_maintenance_docs_match_its_declaration() {
    check::<etcd_modules::maintenance::Maintenance>();
}

#[test]
fn etcd_doctor_docs_match_its_declaration() {
    check::<etcd_modules::doctor::Doctor>();
}
