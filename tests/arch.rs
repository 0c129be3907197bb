//! Two architectures (issue 19). The aarch64 module builds (`playbooks/library/*_aarch64`,
//! from `MODULE_ARCHES=x86_64,aarch64 scripts/build-modules`) run under
//! `qemu-aarch64-static` against a real etcd cluster and report what the x86_64 builds
//! report. Then each engine, ansible-playbook (through `playbooks/action_plugins/`) and
//! etcd-agent, picks per host the build whose ELF machine matches the host's `uname -m`:
//! hosts are private sshds whose `PATH` starts with a fake `uname` (binfmt_misc is not
//! there to run aarch64 code for real), and what arrived on each host is read back from its
//! own temp dir: an x86_64 ELF file on the x86_64 host, an aarch64 one on the "aarch64"
//! host, nothing on the "riscv64" host, whose task fails with a message naming the builds.

use harness::{module_binary, module_library_dir, repo_root, run_module, Ansible, Cluster, Engine};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The ELF `e_machine` numbers of x86_64 and aarch64.
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// The ELF machine of `path` (panics when it is not an ELF file).
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        bytes.len() > 20 && bytes.starts_with(b"\x7fELF"),
        "{} is not ELF",
        path.display()
    );
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// The aarch64 build of module `name`; panics with the command that builds it.
fn aarch64_build(name: &str) -> PathBuf {
    let path = module_library_dir().join(format!("{name}_aarch64"));
    assert!(
        path.is_file(),
        "{} not found: run MODULE_ARCHES=x86_64,aarch64 scripts/build-modules (scripts/test does)",
        path.display()
    );
    path
}

/// How an engine names the aarch64 build it runs and the module in its args file.
#[derive(Clone, Copy, Debug)]
enum Naming {
    /// ansible-playbook through the action plugin: the remote file is `<name>_aarch64` and
    /// `_ansible_module_name` is `<name>_aarch64` too (the module name the plugin ran).
    AnsiblePlaybook,
    /// etcd-agent: the upload is named after the first module that sent those bytes
    /// (here `etcd_health_aarch64-<hash>`) and `_ansible_module_name` is the task's module.
    EtcdAgent,
}

/// Runs the aarch64 build of `name` under qemu-aarch64-static, as Ansible runs a module,
/// from a copy named as `naming`'s engine names it (the library's builds are one multi-call
/// binary, which must find the module from that name or the args).
fn run_aarch64(name: &str, args: &Value, naming: Naming) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let (file, module_arg) = match naming {
        Naming::AnsiblePlaybook => (format!("{name}_aarch64"), format!("{name}_aarch64")),
        Naming::EtcdAgent => (
            "etcd_health_aarch64-0123456789abcdef".to_string(),
            name.to_string(),
        ),
    };
    let binary = dir.path().join(file);
    std::fs::copy(aarch64_build(name), &binary).expect("copy the aarch64 build");
    let mut full = args.clone();
    let obj = full.as_object_mut().unwrap();
    obj.insert("_ansible_check_mode".into(), false.into());
    obj.insert("_ansible_module_name".into(), module_arg.into());
    let args_path = dir.path().join("args");
    std::fs::write(&args_path, serde_json::to_vec(&full).unwrap()).unwrap();
    let out = Command::new("qemu-aarch64-static")
        .arg(&binary)
        .arg(&args_path)
        .output()
        .expect("run qemu-aarch64-static (scripts/install-deps installs qemu-user-static)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{name}_aarch64 ({naming:?}) printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(out.status.success(), result["failed"] != true, "{result}");
    result
}

/// What two runs of etcd_health must agree on (sizes and indexes move between runs).
fn health_facts(r: &Value) -> Value {
    let mut members: Vec<Value> = r["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members in {r}"))
        .iter()
        .map(|m| {
            json!({"id": m["id"], "name": m["name"], "healthy": m["healthy"],
                   "version": m["version"], "is_leader": m["is_leader"],
                   "is_learner": m["is_learner"]})
        })
        .collect();
    members.sort_by_key(|m| m["name"].to_string());
    json!({"healthy": r["healthy"], "failed": r["failed"], "changed": r["changed"],
           "leader": r["leader"]["name"], "members": members})
}

#[test]
fn aarch64_builds_under_qemu_report_what_x86_64_builds_report() {
    for name in ["etcd_health", "etcd_snapshot"] {
        assert_eq!(elf_machine(&module_binary(name)), EM_X86_64, "{name}");
        assert_eq!(
            elf_machine(&aarch64_build(name)),
            EM_AARCH64,
            "{name}_aarch64"
        );
    }
    // one multi-call binary per CPU, installed under every module's name
    let arm_first = std::fs::read(aarch64_build("etcd_health")).unwrap();
    for name in [
        "etcd_snapshot",
        "etcd_restore",
        "etcd_member",
        "etcd_maintenance",
        "etcd_doctor",
    ] {
        assert!(
            std::fs::read(aarch64_build(name)).unwrap() == arm_first,
            "{name}_aarch64 differs from etcd_health_aarch64"
        );
    }
    // without binfmt_misc this machine cannot run it natively: qemu does the work
    assert!(
        Command::new(aarch64_build("etcd_health")).output().is_err(),
        "the aarch64 build ran natively on this machine"
    );
    let cluster = Cluster::start3();
    let args = json!({ "endpoints": cluster.endpoints_csv() });
    let x86 = run_module("etcd_health", &args).checked();
    let arm = run_aarch64("etcd_health", &args, Naming::AnsiblePlaybook);
    assert_eq!(
        run_aarch64("etcd_health", &args, Naming::EtcdAgent)["healthy"],
        true
    );
    assert_eq!(x86["healthy"], true, "{x86}");
    assert_eq!(health_facts(&arm), health_facts(&x86));
    let listed = cluster.member_list();
    assert_eq!(arm["members"].as_array().unwrap().len(), listed.len());
    for info in &listed {
        assert!(
            arm["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == info.id_hex.as_str() && m["name"] == info.name.as_str()),
            "member {} ({}) as etcdctl lists it is missing from {arm}",
            info.name,
            info.id_hex
        );
    }

    // a snapshot by each build, with no write between them: the same revision and keys
    cluster.put_many("arch/", 20);
    let dir = tempfile::tempdir().unwrap();
    let snap = |path: &Path, arm: bool| {
        let args = json!({ "endpoints": cluster.endpoints_csv(), "path": path });
        let r = if arm {
            // the shared upload etcd-agent made for etcd_health runs etcd_snapshot
            run_aarch64("etcd_snapshot", &args, Naming::EtcdAgent)
        } else {
            run_module("etcd_snapshot", &args).checked()
        };
        assert_eq!(r["failed"], false, "{r}");
        let on_disk = std::fs::metadata(path)
            .expect("snapshot file written")
            .len();
        assert_eq!(r["size"], on_disk, "{r}");
        r
    };
    let x86 = snap(&dir.path().join("x86.db"), false);
    let arm = snap(&dir.path().join("arm.db"), true);
    for key in ["revision", "key_count"] {
        assert_eq!(arm[key], x86[key], "{key}: {arm} vs {x86}");
    }
    assert!(arm["key_count"].as_u64().unwrap() >= 20, "{arm}");
}

/// A private sshd whose sessions see `uname -m` print `arch` (when given) and whose `TMPDIR`
/// is `tmp`, a directory of the test's own.
struct Host {
    sshd: harness::Sshd,
    tmp: PathBuf,
    _dir: tempfile::TempDir,
}

impl Host {
    fn start(arch: Option<&str>) -> Host {
        let dir = tempfile::tempdir().expect("temp dir for a test host");
        let tmp = dir.path().join("tmp");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let mut path = String::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        if let Some(arch) = arch {
            harness::write_executable(
                &bin,
                "uname",
                &format!(
                    "#!/bin/sh\nif [ \"$1\" = -m ]; then echo {arch}; else exec /usr/bin/uname \"$@\"; fi\n"
                ),
            );
            path = format!("{}:{path}", bin.display());
        }
        let sshd = harness::Sshd::start_with(
            &[],
            // in a Match block, SetEnv replaces the harness's global list (keep SHLVL)
            &format!(
                "Match all\n  SetEnv SHLVL=1 PATH={path} TMPDIR={}\n",
                tmp.display()
            ),
        );
        let said = sshd.ssh_ok("uname -m");
        assert_eq!(
            said.trim(),
            arch.unwrap_or("x86_64"),
            "the host's uname -m; its environment: {}",
            sshd.ssh_ok("env")
        );
        Host {
            sshd,
            tmp,
            _dir: dir,
        }
    }

    /// Module files (`etcd_health` in the name) anywhere under this host's temp dir, with their
    /// ELF machines.
    fn arrived(&self) -> Vec<(String, u16)> {
        let mut found = Vec::new();
        let mut stack = vec![self.tmp.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if p.is_dir() {
                    stack.push(p);
                } else if name.contains("etcd_health") {
                    found.push((name, elf_machine(&p)));
                }
            }
        }
        found
    }
}

/// The x86_64, "aarch64" and "riscv64" hosts, and an inventory of them (`x86`, `arm`, `rv`)
/// with each host's Ansible remote temp dir inside its own `TMPDIR`.
fn hosts(dir: &Path) -> ([Host; 3], PathBuf) {
    let hosts = [
        Host::start(None),
        Host::start(Some("aarch64")),
        Host::start(Some("riscv64")),
    ];
    let mut inv = String::from("[nodes]\n");
    for (name, h) in ["x86", "arm", "rv"].iter().zip(&hosts) {
        inv.push_str(&format!(
            "{name} {} ansible_remote_tmp={}/ansible\n",
            h.sshd.inventory_host_vars(),
            h.tmp.display()
        ));
    }
    let inv = harness::write_file(dir, "hosts.ini", &inv);
    (hosts, inv)
}

/// A play running etcd_health on every host (failures ignored, so the next task runs),
/// then `after` (extra tasks).
fn playbook(dir: &Path, cluster: &Cluster, after: &str) -> PathBuf {
    harness::write_file(
        dir,
        "arch.yml",
        &format!(
            r#"- name: Per-host module builds
  hosts: nodes
  gather_facts: false
  tasks:
    - name: Health
      etcd_health:
        endpoints: "{}"
      ignore_errors: true
{after}"#,
            cluster.endpoints_csv()
        ),
    )
}

/// What both engines must show: the x86_64 host got the x86_64 build and ran it (healthy), the
/// aarch64 host got the aarch64 build (which this x86_64 machine cannot execute), the riscv64
/// host got nothing.
fn assert_arrivals(hosts: &[Host; 3], engine: &str) {
    let [x86, arm, rv] = hosts;
    let x = x86.arrived();
    assert!(
        !x.is_empty() && x.iter().all(|(_, m)| *m == EM_X86_64),
        "{engine}: x86_64 host got {x:?}; under its temp dir: {:?}",
        walk(&x86.tmp)
    );
    let a = arm.arrived();
    assert!(
        !a.is_empty()
            && a.iter()
                .all(|(n, m)| *m == EM_AARCH64 && n.contains("etcd_health_aarch64")),
        "{engine}: aarch64 host got {a:?}"
    );
    assert_eq!(rv.arrived(), vec![], "{engine}: riscv64 host got a module");
}

/// Every path under `d` (for failure messages).
fn walk(d: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        v.push(e.path().display().to_string());
        if e.path().is_dir() {
            v.extend(walk(&e.path()));
        }
    }
    v
}

/// The refusal both engines give the riscv64 host.
fn assert_refusal(msg: &str, engine: &str) {
    for part in [
        "'riscv64'",
        "no build of this module runs there",
        "x86_64 (",
        "aarch64 (",
        "etcd_health_aarch64)",
        "Nothing was uploaded",
    ] {
        assert!(msg.contains(part), "{engine}: {part:?} not in {msg}");
    }
}

/// Runs etcd_health on the three hosts under `engine`, then checks each host's result and
/// what arrived on it.
fn per_host_selection(engine: Engine) {
    let cluster = Cluster::start3();
    let ansible = Ansible::new();
    let (hosts, inv) = hosts(ansible.dir());
    // ansible-playbook: the action plugins, and keep_remote_files leaves what was sent in
    // each host's own remote temp dir; etcd-agent reads neither key
    ansible.write_file(
        "ansible.cfg",
        &format!(
            "[defaults]\nretry_files_enabled = False\nkeep_remote_files = True\naction_plugins = {}\n",
            repo_root().join("playbooks/action_plugins").display()
        ),
    );
    // etcd-agent removes its temp dir at the end: a second task copies out what is there
    let capture = r#"    - name: Capture
      ansible.builtin.shell: mkdir -p "$TMPDIR/seen" && cp "$TMPDIR"/etcd-agent.*/etcd_health* "$TMPDIR/seen/" || true
      changed_when: true
"#;
    let pb = playbook(ansible.dir(), &cluster, capture);
    let out = engine.playbook(&ansible, &inv, &pb, &[]);
    let name = engine.name();
    let ok = out.result_ok("Health", "x86");
    assert_eq!(ok["healthy"], true, "{name}: {ok}");
    let arm = out.result("Health", "arm").expect("arm result");
    assert_eq!(arm["failed"], true, "{name}: {arm}");
    let arm_text = arm.to_string();
    assert!(
        arm_text.contains("etcd_health_aarch64") && arm_text.contains("Exec format error"),
        "{name}: the aarch64 build was not what the aarch64 host tried to run: {arm}"
    );
    let rv = out.result("Health", "rv").expect("rv result");
    assert_eq!(rv["failed"], true, "{name}: {rv}");
    assert_refusal(rv["msg"].as_str().unwrap_or_default(), name);
    assert_arrivals(&hosts, name);
}

#[test]
fn ansible_playbook_runs_each_host_the_build_for_its_cpu() {
    per_host_selection(Engine::AnsiblePlaybook);
}

#[test]
fn etcd_agent_runs_each_host_the_build_for_its_cpu() {
    per_host_selection(Engine::agent_required());
}
