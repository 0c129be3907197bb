//! etcd_snapshot against real etcd 3.4 clusters. Every claim of the module
//! is checked independently: `etcdctl snapshot status`, `sha256sum`, the
//! directory listing.
//!
//! Local helpers (not in the harness): a TCP proxy that pauses or cuts the
//! snapshot stream after a given number of bytes, a bulk loader through
//! etcd's JSON gateway (1 KiB values, so the database is big enough for
//! the stream to be interrupted mid-way), and a spawned (not awaited)
//! module run to SIGKILL.

use harness::process::guarded_command;
use harness::{
    expect_not_failed as ok, module_binary, run_module, wait_until, Cluster, ClusterOptions,
    DEFAULT_TIMEOUT,
};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn one_member() -> Cluster {
    Cluster::start(ClusterOptions {
        members: 1,
        ..ClusterOptions::default()
    })
}

/// Runs etcd_snapshot with `args` (check mode etc. via `_ansible_*` keys)
/// and checks the protocol basics.
fn snapshot(args: Value) -> Value {
    run_module("etcd_snapshot", &args).checked()
}

/// `etcdctl snapshot status FILE -w json`.
fn etcdctl_status(file: &Path) -> Value {
    harness::Etcdctl::default().snapshot_status(file)
}

fn sha256sum(file: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(file)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Sorted names of the entries of `dir`.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn temp_files(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|n| n.starts_with(".etcd-snapshot-") && n.ends_with(".part"))
        .collect()
}

/// Writes `n` keys `<prefix><i>` with `size`-byte values through etcd's
/// JSON gateway, 100 per txn (etcdctl would need one process per txn).
fn load(endpoint: &str, prefix: &str, n: usize, size: usize) {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let host = endpoint.trim_start_matches("http://");
    for start in (0..n).step_by(100) {
        let ops: Vec<Value> = (start..(start + 100).min(n))
            .map(|i| {
                let value: String = format!("{i:08}-")
                    .chars()
                    .chain(std::iter::repeat('v'))
                    .take(size)
                    .collect();
                json!({"requestPut": {"key": b64(format!("{prefix}{i:08}").as_bytes()),
                                      "value": b64(value.as_bytes())}})
            })
            .collect();
        let body = json!({ "success": ops }).to_string();
        wait_until("a gateway txn to succeed", DEFAULT_TIMEOUT, || {
            let mut s = TcpStream::connect(host).ok()?;
            write!(
                s,
                "POST /v3/kv/txn HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .ok()?;
            let mut response = String::new();
            s.read_to_string(&mut response).ok()?;
            (response.starts_with("HTTP/1.1 200") && response.contains("\"succeeded\":true"))
                .then_some(())
        });
    }
}

/// What the proxy does once a connection has sent `after` bytes to the client.
#[derive(Clone, Copy, PartialEq)]
enum Interrupt {
    /// Stop forwarding (the client waits, as if the member froze).
    Pause,
    /// Close both sides (as if the member died).
    Cut,
}

/// A TCP proxy to one etcd member that interrupts any connection whose
/// server-to-client traffic passes `after` bytes (the small status and
/// member-list answers never do; the snapshot stream does).
struct Proxy {
    addr: SocketAddr,
    interrupted: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Bytes sent to clients, all connections together.
    forwarded: Arc<AtomicU64>,
}

impl Proxy {
    fn start(upstream: &str, after: u64, how: Interrupt) -> Proxy {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let interrupted = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let (int2, stop2, fwd2) = (interrupted.clone(), stop.clone(), forwarded.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut &c2, &mut &s2);
                    let _ = s2.shutdown(Shutdown::Write);
                });
                let (int3, stop3, fwd3) = (int2.clone(), stop2.clone(), fwd2.clone());
                std::thread::spawn(move || {
                    pump(server, client, after, how, &int3, &stop3, &fwd3);
                });
            }
        });
        Proxy {
            addr,
            interrupted,
            stop,
            forwarded,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    after: u64,
    how: Interrupt,
    interrupted: &AtomicBool,
    stop: &AtomicBool,
    total: &AtomicU64,
) {
    let forwarded = AtomicU64::new(0);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        total.fetch_add(n as u64, Ordering::SeqCst);
        if forwarded.fetch_add(n as u64, Ordering::SeqCst) + n as u64 >= after {
            interrupted.store(true, Ordering::SeqCst);
            if how == Interrupt::Pause {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("etcd-agent-snapshot-test-")
        .tempdir()
        .unwrap()
}

#[test]
fn snapshot_matches_etcdctl_and_is_byte_compatible() {
    let cluster = Cluster::start3();
    cluster.put_many("k/", 500);
    cluster.etcdctl_ok(&["del", "k/00000007"]);
    let tmp = scratch();
    let path = tmp.path().join("nightly.db");

    // A dead endpoint first: the module moves on to the next one.
    let endpoints = format!("http://127.0.0.1:9,{}", cluster.endpoints_csv());
    let r = ok(snapshot(json!({ "endpoints": endpoints, "path": path })));
    assert_eq!(r["changed"], true);
    assert_eq!(r["path"], path.display().to_string());
    let status = etcdctl_status(&path);
    assert_eq!(r["revision"], status["revision"], "{r}\n{status}");
    assert_eq!(r["key_count"], status["totalKey"], "{r}\n{status}");
    assert_eq!(r["db_size"], status["totalSize"]);
    assert_eq!(r["sha256"], sha256sum(&path));
    assert_eq!(r["size"], std::fs::metadata(&path).unwrap().len());
    assert_eq!(r["size"].as_u64().unwrap() % 512, 32, "db + sha256 trailer");
    let m0 = cluster.member_info(0).unwrap();
    assert_eq!(r["member"]["name"], m0.name.as_str(), "first live endpoint");
    assert_eq!(r["member"]["id"], m0.id_hex.as_str());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o600);

    // The same database through etcdctl gives the same statistics.
    let theirs = tmp.path().join("etcdctl.db");
    // etcdctl refuses `snapshot save` with more than one endpoint.
    let out = cluster.etcdctl_at(
        &cluster.endpoints()[..1],
        &["snapshot", "save", theirs.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let their_status = etcdctl_status(&theirs);
    assert_eq!(their_status["revision"], status["revision"]);
    assert_eq!(their_status["totalKey"], status["totalKey"]);

    // state=verified on both files, without any endpoint.
    for file in [&path, &theirs] {
        let v = ok(snapshot(
            json!({ "state": "verified", "path": file, "endpoints": "http://127.0.0.1:9" }),
        ));
        assert_eq!(v["changed"], false);
        assert_eq!(v["valid"], true);
        assert_eq!(v["revision"], status["revision"]);
        assert_eq!(v["sha256"], sha256sum(file));
    }

    // mode as a number (YAML 0640) and an explicit owner/group by number.
    let other = tmp.path().join("other.db");
    let uid = unsafe { libc::getuid() };
    let gid = unsafe { libc::getgid() };
    ok(snapshot(
        json!({ "endpoints": cluster.endpoints_csv(), "path": other,
                        "mode": 0o640, "owner": uid, "group": gid.to_string() }),
    ));
    let meta = std::fs::metadata(&other).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert!(temp_files(tmp.path()).is_empty());
}

#[test]
fn corrupt_or_truncated_files_fail_verification() {
    let cluster = one_member();
    cluster.put_many("k/", 200);
    let tmp = scratch();
    let good = tmp.path().join("good.db");
    ok(snapshot(
        json!({ "endpoints": cluster.endpoints_csv(), "path": good }),
    ));
    let bytes = std::fs::read(&good).unwrap();

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x01;
    let truncated = &bytes[..bytes.len() - 1000];
    let no_trailer = &bytes[..bytes.len() - 32];
    for (name, content, why) in [
        ("flipped.db", &flipped[..], "does not match"),
        ("truncated.db", truncated, "truncated"),
        ("bare.db", no_trailer, "no sha256 trailer"),
    ] {
        let file = tmp.path().join(name);
        std::fs::write(&file, content).unwrap();
        let r = snapshot(json!({ "state": "verified", "path": file }));
        assert_eq!(r["failed"], true, "{name}: {r}");
        assert_eq!(r["valid"], false);
        assert_eq!(r["changed"], false);
        let msg = r["msg"].as_str().unwrap();
        assert!(msg.contains(why), "{name}: {msg}");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            content,
            "verify changes nothing"
        );
    }
}

#[test]
fn dir_mode_keeps_the_newest_and_honours_max_age_and_check_mode() {
    let cluster = one_member();
    cluster.put_many("k/", 100);
    let tmp = scratch();
    let dir = tmp.path().join("backups");
    std::fs::create_dir(&dir).unwrap();
    // Older snapshots (by name; real ones, since only copies that verify
    // count toward keep), plus files that are not ours.
    let good = tmp.path().join("good.db");
    ok(snapshot(
        json!({ "endpoints": cluster.endpoints_csv(), "path": good }),
    ));
    let old = [
        "etcd-snapshot-20200101T000000Z.db",
        "etcd-snapshot-20210101T000000Z.db",
        "etcd-snapshot-20220101T000000Z.db",
    ];
    for name in old {
        std::fs::copy(&good, dir.join(name)).unwrap();
    }
    let foreign = [
        "notes.txt",
        "etcd-snapshot-manual.db",
        "etcd-snapshot-20190101T000000Z.db.bak",
    ];
    for name in foreign {
        std::fs::write(dir.join(name), "keep me").unwrap();
    }
    let base = json!({ "endpoints": cluster.endpoints_csv(), "dir": dir, "keep": 2 });
    let with = |extra: Value| {
        let mut args = base.clone();
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        args
    };

    // Check mode: reports the file it would write and what keep would remove; touches nothing.
    let before = listing(&dir);
    let r = ok(snapshot(with(
        json!({ "_ansible_check_mode": true, "_ansible_diff": true }),
    )));
    assert_eq!(r["changed"], true);
    let would = r["path"].as_str().unwrap();
    assert!(
        would.starts_with(&format!("{}/etcd-snapshot-", dir.display())),
        "{would}"
    );
    assert_eq!(r["removed"].as_array().unwrap().len(), 2, "{r}");
    let after = r["diff"]["after"]["snapshots"].as_array().unwrap();
    assert!(after.contains(&json!(would)));
    // The diff tells what keep would remove, as the real run does.
    let path_of = |name: &str| json!(dir.join(name).display().to_string());
    assert_eq!(
        after,
        &vec![path_of(old[2]), json!(would)],
        "diff after: the newest old copy and the new file: {r}"
    );
    assert_eq!(
        r["diff"]["before"]["snapshots"],
        json!(old.iter().map(|n| path_of(n)).collect::<Vec<_>>())
    );
    assert_eq!(
        listing(&dir),
        before,
        "check mode wrote or removed something"
    );

    // The real run: new snapshot + newest old one remain; foreign files untouched.
    let r = ok(snapshot(base.clone()));
    assert_eq!(r["changed"], true);
    let new_path = PathBuf::from(r["path"].as_str().unwrap());
    let new_name = new_path.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        new_name.len() == "etcd-snapshot-20261123T120000Z.db".len() && new_name.ends_with("Z.db")
    );
    let mut expected: Vec<String> = foreign.iter().map(|s| s.to_string()).collect();
    expected.push(old[2].to_string());
    expected.push(new_name.clone());
    expected.sort();
    assert_eq!(listing(&dir), expected);
    let mut removed: Vec<String> = r["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        vec![
            dir.join(old[0]).display().to_string(),
            dir.join(old[1]).display().to_string()
        ]
    );
    for name in foreign {
        assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), "keep me");
    }
    assert_eq!(
        etcdctl_status(&new_path)["revision"],
        r["revision"],
        "the new file is a real snapshot"
    );

    // max_age: the newest is seconds old, so nothing happens.
    let r = ok(snapshot(with(json!({ "max_age": "1h" }))));
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["path"], new_path.display().to_string());
    assert!(r["skipped_reason"].as_str().unwrap().contains("max_age"));
    assert_eq!(listing(&dir), expected);

    // ...but with only old snapshots it does take one (numbers are seconds).
    let old_dir = tmp.path().join("old-only");
    std::fs::create_dir(&old_dir).unwrap();
    std::fs::write(old_dir.join(old[0]), "x").unwrap();
    let r = ok(snapshot(
        json!({ "endpoints": cluster.endpoints_csv(), "dir": old_dir, "max_age": 86400 }),
    ));
    assert_eq!(r["changed"], true);
    assert_eq!(listing(&old_dir).len(), 2);

    // state=verified with dir checks the newest snapshot.
    let v = ok(snapshot(json!({ "state": "verified", "dir": dir })));
    assert_eq!(v["path"], new_path.display().to_string());
    assert_eq!(v["valid"], true);
}

#[test]
fn killed_mid_stream_leaves_the_old_snapshot_and_no_file_under_the_final_name() {
    let cluster = one_member();
    let endpoint = cluster.endpoints()[0].clone();
    load(&endpoint, "big/", 3000, 1024);
    let tmp = scratch();
    let path = tmp.path().join("etcd.snap");
    ok(snapshot(json!({ "endpoints": endpoint, "path": path })));
    let old_sha = sha256sum(&path);
    let db_size = std::fs::metadata(&path).unwrap().len();
    assert!(
        db_size > 2_000_000,
        "database too small to interrupt: {db_size}"
    );
    cluster.put("after", "the first snapshot"); // the next snapshot differs

    // The stream stalls after 512 KiB (as if the member froze); then SIGKILL.
    let proxy = Proxy::start(&endpoint, 512 * 1024, Interrupt::Pause);
    let args_file = tmp.path().join("args.json");
    std::fs::write(
        &args_file,
        json!({ "endpoints": proxy.endpoint(), "path": path, "command_timeout": 300 }).to_string(),
    )
    .unwrap();
    let mut child = guarded_command(module_binary("etcd_snapshot"))
        .arg(&args_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = wait_until("a partial temp file", DEFAULT_TIMEOUT, || {
        if !proxy.interrupted.load(Ordering::SeqCst) {
            return None;
        }
        let temps = temp_files(tmp.path());
        let temp = tmp.path().join(temps.first()?);
        (std::fs::metadata(&temp).ok()?.len() > 0).then_some(temp)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    drop(proxy);

    assert_eq!(sha256sum(&path), old_sha, "old snapshot must be intact");
    assert!(partial.exists(), "SIGKILL leaves the (locked) temp file");
    assert!(std::fs::metadata(&partial).unwrap().len() < db_size);

    // The next run removes the dead run's temp file and succeeds.
    let r = ok(snapshot(json!({ "endpoints": endpoint, "path": path })));
    assert!(
        r["removed"]
            .as_array()
            .unwrap()
            .contains(&json!(partial.display().to_string())),
        "{r}"
    );
    assert!(temp_files(tmp.path()).is_empty());
    assert_ne!(sha256sum(&path), old_sha);
    assert_eq!(etcdctl_status(&path)["revision"], r["revision"]);
}

#[test]
fn a_broken_stream_fails_and_removes_its_temp_file() {
    let cluster = one_member();
    let endpoint = cluster.endpoints()[0].clone();
    load(&endpoint, "big/", 3000, 1024);
    let tmp = scratch();
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    let old = dir.join("etcd-snapshot-20200101T000000Z.db");
    std::fs::write(&old, "old").unwrap();

    let proxy = Proxy::start(&endpoint, 512 * 1024, Interrupt::Cut);
    let r = snapshot(json!({ "endpoints": proxy.endpoint(), "dir": dir, "keep": 1 }));
    assert_eq!(r["failed"], true, "{r}");
    assert!(proxy.interrupted.load(Ordering::SeqCst));
    let msg = r["msg"].as_str().unwrap();
    assert!(msg.contains("no snapshot could be taken"), "{msg}");
    assert_eq!(
        listing(&dir),
        vec!["etcd-snapshot-20200101T000000Z.db".to_string()],
        "no temp file, no new file, keep did not run"
    );
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "old");
}

#[test]
fn a_stalled_stream_times_out_and_a_broken_one_falls_back_to_the_next_endpoint() {
    let cluster = one_member();
    let endpoint = cluster.endpoints()[0].clone();
    load(&endpoint, "big/", 3000, 1024);
    let tmp = scratch();
    let path = tmp.path().join("etcd.snap");

    // A member that stops sending mid-stream (frozen): the per-message idle
    // limit (dial_timeout + command_timeout) ends the wait.
    let stalled = Proxy::start(&endpoint, 512 * 1024, Interrupt::Pause);
    let r = snapshot(json!({ "endpoints": stalled.endpoint(), "path": path,
                             "dial_timeout": 1, "command_timeout": 1 }));
    assert_eq!(r["failed"], true, "{r}");
    assert!(r["msg"].as_str().unwrap().contains("stalled"), "{r}");
    assert!(listing(tmp.path()).is_empty(), "nothing left behind");
    drop(stalled);

    // A stream that breaks on the first endpoint is retried on the next one.
    let cut = Proxy::start(&endpoint, 512 * 1024, Interrupt::Cut);
    let r = ok(snapshot(json!({
        "endpoints": [cut.endpoint(), endpoint.clone()],
        "path": path,
    })));
    assert!(cut.interrupted.load(Ordering::SeqCst));
    assert_eq!(r["member"]["endpoint"], endpoint.as_str(), "{r}");
    assert!(r["warnings"][0].as_str().unwrap().contains(&cut.endpoint()));
    assert_eq!(etcdctl_status(&path)["revision"], r["revision"]);
    assert_eq!(listing(tmp.path()), vec!["etcd.snap".to_string()]);
}

#[test]
fn snapshot_over_tls_with_client_certificates() {
    let cluster = Cluster::start(ClusterOptions {
        members: 1,
        tls: true,
        ..ClusterOptions::default()
    });
    cluster.put_many("k/", 50);
    let tls = cluster.tls().unwrap();
    let tmp = scratch();
    let path = tmp.path().join("tls.db");
    let r = ok(snapshot(json!({
        "endpoints": cluster.endpoints_csv(),
        "ca_cert": tls.ca_cert, "client_cert": tls.client_cert, "client_key": tls.client_key,
        "path": path,
    })));
    assert!(r["member"]["endpoint"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    let status = etcdctl_status(&path);
    assert_eq!(r["revision"], status["revision"]);
    assert_eq!(r["key_count"], status["totalKey"]);

    // Without the client certificate the member refuses: a clear failure, no file.
    let r = snapshot(json!({
        "endpoints": cluster.endpoints_csv(), "ca_cert": tls.ca_cert,
        "path": tmp.path().join("refused.db"), "dial_timeout": 3,
    }));
    assert_eq!(r["failed"], true, "{r}");
    assert_eq!(listing(tmp.path()), vec!["tls.db".to_string()]);
}

/// `sha256` of `data` through `sha256sum`, as raw bytes.
fn sha256_bytes(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap();
    (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Sets the modification time of `file` to `when` (`touch -d`).
fn touch(file: &Path, when: &str) {
    let st = Command::new("touch")
        .args(["-d", when])
        .arg(file)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_snapshot_stamped_in_the_future_never_outranks_or_removes_the_new_one() {
    let cluster = one_member();
    cluster.put_many("k/", 100);
    let tmp = scratch();
    let good = tmp.path().join("good.db");
    ok(snapshot(
        json!({ "endpoints": cluster.endpoints_csv(), "path": good }),
    ));

    // The issue's reproduction, plus a good old copy and one that does not verify.
    let dir = tmp.path().join("backups");
    std::fs::create_dir(&dir).unwrap();
    let future = dir.join("etcd-snapshot-20301231T000000Z.db");
    std::fs::write(&future, vec![b'f'; 1000]).unwrap();
    let old_good = dir.join("etcd-snapshot-20200101T000000Z.db");
    std::fs::copy(&good, &old_good).unwrap();
    let old_bad = dir.join("etcd-snapshot-20210101T000000Z.db");
    std::fs::write(&old_bad, vec![b'b'; 1000]).unwrap();

    // Check mode tells the same story and touches nothing.
    let before = listing(&dir);
    let r = ok(snapshot(json!({
        "endpoints": cluster.endpoints_csv(), "dir": dir, "keep": 1,
        "_ansible_check_mode": true, "_ansible_diff": true,
    })));
    assert_eq!(listing(&dir), before, "check mode changed the directory");
    assert_eq!(r["removed"], json!([old_good.display().to_string()]), "{r}");
    assert_eq!(r["skipped_files"].as_array().unwrap().len(), 2, "{r}");
    let mut after = vec![
        json!(future.display().to_string()),
        json!(old_bad.display().to_string()),
        r["path"].clone(),
    ];
    after.sort_by_key(|v| v.as_str().unwrap().to_string());
    assert_eq!(r["diff"]["after"]["snapshots"], json!(after), "{r}");

    let r = ok(snapshot(
        json!({ "endpoints": cluster.endpoints_csv(), "dir": dir, "keep": 1 }),
    ));
    let new_path = PathBuf::from(r["path"].as_str().unwrap());
    assert!(
        new_path.is_file(),
        "the snapshot just written was removed: {r}"
    );
    assert_eq!(etcdctl_status(&new_path)["revision"], r["revision"]);
    assert_eq!(sha256sum(&new_path), r["sha256"].as_str().unwrap());
    // keep: 1 counts the new snapshot only: the good old copy goes; the
    // future-stamped and the unverifiable files stay, untouched.
    assert!(!old_good.exists(), "{r}");
    assert_eq!(std::fs::read(&future).unwrap(), vec![b'f'; 1000]);
    assert_eq!(std::fs::read(&old_bad).unwrap(), vec![b'b'; 1000]);
    let mut expected = vec![
        future.file_name().unwrap().to_str().unwrap().to_string(),
        old_bad.file_name().unwrap().to_str().unwrap().to_string(),
        new_path.file_name().unwrap().to_str().unwrap().to_string(),
    ];
    expected.sort();
    assert_eq!(listing(&dir), expected);
    assert_eq!(r["removed"], json!([old_good.display().to_string()]), "{r}");
    let reason = |path: &Path| -> String {
        r["skipped_files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["path"] == path.display().to_string())
            .unwrap_or_else(|| panic!("{} not reported as skipped: {r}", path.display()))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason(&future).contains("stamped in the future"), "{r}");
    // Not under `skipped`: Ansible reads a truthy `skipped` as "the task was skipped".
    assert!(r.get("skipped").is_none(), "{r}");
    assert!(reason(&old_bad).contains("does not verify"), "{r}");
    assert_eq!(r["warnings"].as_array().unwrap().len(), 2, "{r}");

    // max_age: a file stamped in the future (even one that verifies) is
    // not "0s old": the backup is taken.
    let fresh = tmp.path().join("future-only");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::copy(&good, fresh.join("etcd-snapshot-20301231T000000Z.db")).unwrap();
    std::fs::write(fresh.join("etcd-snapshot-20301230T000000Z.db"), "x").unwrap();
    let r = ok(snapshot(json!({
        "endpoints": cluster.endpoints_csv(), "dir": fresh, "max_age": "1h", "keep": 1
    })));
    assert_eq!(r["changed"], true, "{r}");
    let taken = PathBuf::from(r["path"].as_str().unwrap());
    assert_eq!(etcdctl_status(&taken)["revision"], r["revision"]);
    assert_eq!(listing(&fresh).len(), 3, "nothing removed: {r}");
    // ...and once a good recent copy exists, max_age skips.
    let r = ok(snapshot(json!({
        "endpoints": cluster.endpoints_csv(), "dir": fresh, "max_age": "1h", "keep": 1
    })));
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["path"], taken.display().to_string());
    assert_eq!(listing(&fresh).len(), 3);

    // path: a file modified in the future, or one that does not verify, is no recent backup.
    let fixed = tmp.path().join("fixed.db");
    std::fs::copy(&good, &fixed).unwrap();
    touch(&fixed, "2030-12-31 00:00:00");
    cluster.put("changed", "since good.db");
    let r = ok(snapshot(json!({
        "endpoints": cluster.endpoints_csv(), "path": fixed, "max_age": "1h"
    })));
    assert_eq!(r["changed"], true, "{r}");
    assert_ne!(sha256sum(&fixed), sha256sum(&good));
    assert_eq!(etcdctl_status(&fixed)["revision"], r["revision"]);
    std::fs::write(&fixed, "not a snapshot").unwrap();
    let r = ok(snapshot(json!({
        "endpoints": cluster.endpoints_csv(), "path": fixed, "max_age": "1h"
    })));
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(etcdctl_status(&fixed)["revision"], r["revision"]);

    // state=verified with dir checks the newest file not stamped in the future.
    let v = ok(snapshot(json!({ "state": "verified", "dir": fresh })));
    assert_eq!(v["path"], taken.display().to_string(), "{v}");
}

/// A 32 KiB bbolt database whose branch pages 4 -> 5 -> 6 -> 7 -> 2 each
/// list the next page 255 times, over leaf page 3 (the root, holding one
/// bucket `members` rooted at page 4), followed by a correct sha256
/// trailer: 255^5 paths for a walk that does not remember pages.
fn crafted_snapshot() -> Vec<u8> {
    const PS: usize = 4096;
    let mut db = vec![0u8; 8 * PS];
    let put =
        |db: &mut [u8], at: usize, bytes: &[u8]| db[at..at + bytes.len()].copy_from_slice(bytes);
    for id in 0..2u64 {
        let p = id as usize * PS;
        put(&mut db, p, &id.to_le_bytes());
        put(&mut db, p + 8, &4u16.to_le_bytes()); // meta page
        let m = p + 16;
        put(&mut db, m, &0xED0C_DAEDu32.to_le_bytes()); // magic
        put(&mut db, m + 4, &2u32.to_le_bytes()); // version
        put(&mut db, m + 8, &(PS as u32).to_le_bytes());
        put(&mut db, m + 16, &3u64.to_le_bytes()); // root bucket page
        put(&mut db, m + 32, &2u64.to_le_bytes()); // freelist
        put(&mut db, m + 40, &8u64.to_le_bytes()); // high-water mark
        put(&mut db, m + 48, &id.to_le_bytes()); // txid
        let mut sum: u64 = 0xcbf2_9ce4_8422_2325; // fnv64a of the first 56 bytes
        for &b in &db[m..m + 56] {
            sum ^= u64::from(b);
            sum = sum.wrapping_mul(0x0100_0000_01b3);
        }
        put(&mut db, m + 56, &sum.to_le_bytes());
    }
    let leaf = 3 * PS;
    put(&mut db, leaf, &3u64.to_le_bytes());
    put(&mut db, leaf + 8, &2u16.to_le_bytes()); // leaf page
    put(&mut db, leaf + 10, &1u16.to_le_bytes()); // one entry
    put(&mut db, leaf + 16, &1u32.to_le_bytes()); // a bucket
    put(&mut db, leaf + 20, &16u32.to_le_bytes()); // key right after the element
    put(&mut db, leaf + 24, &7u32.to_le_bytes());
    put(&mut db, leaf + 28, &16u32.to_le_bytes());
    put(&mut db, leaf + 32, b"members");
    put(&mut db, leaf + 39, &4u64.to_le_bytes()); // the bucket's root page
    for (page, next) in [(4u64, 5u64), (5, 6), (6, 7), (7, 2), (2, 3)] {
        let p = page as usize * PS;
        put(&mut db, p, &page.to_le_bytes());
        put(&mut db, p + 8, &1u16.to_le_bytes()); // branch page
        put(&mut db, p + 10, &255u16.to_le_bytes());
        for i in 0..255 {
            put(&mut db, p + 16 + i * 16 + 8, &next.to_le_bytes());
        }
    }
    let trailer = sha256_bytes(&db);
    db.extend_from_slice(&trailer);
    db
}

#[test]
fn a_crafted_snapshot_with_a_page_cycle_fails_verification_as_corrupt_quickly() {
    let tmp = scratch();
    let file = tmp.path().join("crafted.db");
    let bytes = crafted_snapshot();
    assert_eq!(bytes.len() % 512, 32);
    std::fs::write(&file, &bytes).unwrap();
    let args_file = tmp.path().join("args.json");
    std::fs::write(
        &args_file,
        json!({ "state": "verified", "path": file }).to_string(),
    )
    .unwrap();
    let mut child = guarded_command(module_binary("etcd_snapshot"))
        .arg(&args_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let finished = harness::process::wait_timeout(&mut child, DEFAULT_TIMEOUT);
    if finished.is_none() {
        harness::process::kill_and_reap(&mut child);
        panic!("state=verified still walking a 32 KiB file after {DEFAULT_TIMEOUT:?}");
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["failed"], true, "{r}");
    assert_eq!(r["valid"], false, "{r}");
    assert!(r["msg"].as_str().unwrap().contains("corrupt"), "{r}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "verify changes nothing"
    );
}

/// Runs etcd_snapshot with `args` in the working directory `cwd`.
fn snapshot_in(cwd: &Path, args: Value) -> Value {
    let args_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(args_file.path(), args.to_string()).unwrap();
    let out = guarded_command(module_binary("etcd_snapshot"))
        .arg(args_file.path())
        .current_dir(cwd)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Every path under `dir`, recursively, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(tree(&path));
        }
        out.push(path);
    }
    out.sort();
    out
}

#[test]
fn a_destination_that_cannot_hold_a_snapshot_fails_before_anything_is_streamed() {
    let cluster = one_member();
    let endpoint = cluster.endpoints()[0].clone();
    load(&endpoint, "big/", 3000, 1024);
    let tmp = scratch();
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let a_file = tmp.path().join("a-file");
    std::fs::write(&a_file, "keep me").unwrap();
    let a_dir = tmp.path().join("a-dir");
    std::fs::create_dir(&a_dir).unwrap();
    let long = "x".repeat(300);
    let cases = [
        (json!({ "dir": "" }), "must not be empty"),
        (json!({ "path": "" }), "must not be empty"),
        (json!({ "dir": a_file }), "not a directory"),
        (json!({ "dir": a_file.join("sub") }), "Not a directory"),
        (json!({ "dir": tmp.path().join(&long) }), "too long"),
        (
            json!({ "path": tmp.path().join("missing").join("x.db") }),
            "does not exist",
        ),
        (
            json!({ "path": tmp.path().join(format!("{long}.db")) }),
            "too long",
        ),
        (json!({ "path": a_dir }), "is a directory"),
        (
            json!({ "path": format!("{}/", a_dir.display()) }),
            "directory",
        ),
        // Bad input elsewhere: the missing dir is not created either.
        (
            json!({ "dir": tmp.path().join("new").join("dir"), "client_cert": a_file }),
            "together",
        ),
        (
            json!({ "dir": tmp.path().join("new"), "mode": "u+rw" }),
            "octal",
        ),
    ];
    let proxies: Vec<Proxy> = (0..2)
        .map(|_| Proxy::start(&endpoint, u64::MAX, Interrupt::Cut))
        .collect();
    let before = tree(tmp.path());
    for (extra, why) in cases {
        for check_mode in [true, false] {
            let mut args = json!({
                "endpoints": [proxies[0].endpoint(), proxies[1].endpoint()],
                "_ansible_check_mode": check_mode,
            });
            args.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let r = snapshot_in(&cwd, args);
            assert_eq!(r["failed"], true, "{extra} (check mode {check_mode}): {r}");
            let msg = r["msg"].as_str().unwrap();
            assert!(msg.contains(why), "{extra}: {msg}");
            assert_eq!(
                tree(tmp.path()),
                before,
                "{extra} created or removed something: {r}"
            );
            assert_eq!(std::fs::read_to_string(&a_file).unwrap(), "keep me");
            for p in &proxies {
                let sent = p.forwarded.load(Ordering::SeqCst);
                assert!(
                    sent < 64 * 1024,
                    "{extra}: {sent} bytes streamed before failing: {r}"
                );
            }
        }
    }
}

/// Runs etcd_snapshot with `args` in a private mount namespace where
/// `mount` is a fresh tmpfs mounted with `options`; returns the result and
/// what the tmpfs held after the run (the namespace, and the tmpfs, end
/// with the command).
fn snapshot_on_tmpfs(mount: &Path, options: &str, args: Value) -> (Value, String) {
    let args_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(args_file.path(), args.to_string()).unwrap();
    let out = guarded_command("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            r#"mount -t tmpfs -o "$1" tmpfs "$2" || exit 99; "$3" "$4"; echo "listing:$(ls -A "$2")" >&2"#,
            "sh",
            options,
        ])
        .arg(mount)
        .arg(module_binary("etcd_snapshot"))
        .arg(args_file.path())
        .output()
        .expect("run unshare (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(
        out.status.code(),
        Some(99),
        "cannot mount a tmpfs: {stderr}"
    );
    let result = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let listing = stderr
        .lines()
        .find_map(|l| l.strip_prefix("listing:"))
        .unwrap_or_else(|| panic!("no listing: {stderr}"))
        .to_string();
    (result, listing)
}

#[test]
fn disk_full_and_read_only_fail_at_once_without_trying_other_endpoints() {
    let cluster = one_member();
    let endpoint = cluster.endpoints()[0].clone();
    load(&endpoint, "big/", 3000, 1024);
    let tmp = scratch();
    let mount = tmp.path().join("mnt");
    std::fs::create_dir(&mount).unwrap();

    // Disk full: a 1 MiB file system for a 3 MB snapshot.
    let proxies: Vec<Proxy> = (0..2)
        .map(|_| Proxy::start(&endpoint, u64::MAX, Interrupt::Cut))
        .collect();
    let endpoints = json!([proxies[0].endpoint(), proxies[1].endpoint()]);
    let (r, left) = snapshot_on_tmpfs(
        &mount,
        "size=1m",
        json!({ "endpoints": endpoints, "dir": mount, "keep": 1 }),
    );
    assert_eq!(r["failed"], true, "{r}");
    let msg = r["msg"].as_str().unwrap();
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(left.is_empty(), "left on the file system: {left:?}");
    let first = proxies[0].forwarded.load(Ordering::SeqCst);
    let second = proxies[1].forwarded.load(Ordering::SeqCst);
    assert!(
        first > 512 * 1024,
        "the first endpoint streamed until the disk was full: {first}"
    );
    assert!(
        second < 64 * 1024,
        "the second endpoint was asked for a snapshot too: {second} bytes"
    );
    drop(proxies);

    // Read-only: fails before streaming anything, from any endpoint.
    let proxies: Vec<Proxy> = (0..2)
        .map(|_| Proxy::start(&endpoint, u64::MAX, Interrupt::Cut))
        .collect();
    let endpoints = json!([proxies[0].endpoint(), proxies[1].endpoint()]);
    for target in [
        json!({ "dir": mount }),
        json!({ "path": mount.join("etcd.db") }),
    ] {
        let mut args = json!({ "endpoints": endpoints });
        args.as_object_mut()
            .unwrap()
            .extend(target.as_object().unwrap().clone());
        let (r, left) = snapshot_on_tmpfs(&mount, "ro,size=1m", args);
        assert_eq!(r["failed"], true, "{r}");
        let msg = r["msg"].as_str().unwrap();
        assert!(msg.contains("Read-only file system"), "{msg}");
        assert!(left.is_empty(), "{left:?}");
        for p in &proxies {
            let sent = p.forwarded.load(Ordering::SeqCst);
            assert!(sent < 64 * 1024, "{target}: {sent} bytes streamed: {r}");
        }
    }
    assert!(
        listing(&mount).is_empty(),
        "nothing written under the real mount point"
    );
}
