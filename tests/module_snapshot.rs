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
use harness::{module_binary, run_module, wait_until, Cluster, ClusterOptions, DEFAULT_TIMEOUT};
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
    let run = run_module("etcd_snapshot", &args);
    assert_eq!(
        run.status.success(),
        run.result["failed"] != true,
        "exit code must follow `failed`: {}",
        run.result
    );
    assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
    run.result
}

fn ok(result: Value) -> Value {
    assert_eq!(result["failed"], false, "{result}");
    result
}

/// `etcdctl snapshot status FILE -w json`.
fn etcdctl_status(file: &Path) -> Value {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(file)
        .output()
        .expect("run etcdctl");
    assert!(
        out.status.success(),
        "etcdctl snapshot status {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
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
}

impl Proxy {
    fn start(upstream: &str, after: u64, how: Interrupt) -> Proxy {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let interrupted = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (int2, stop2) = (interrupted.clone(), stop.clone());
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
                let (int3, stop3) = (int2.clone(), stop2.clone());
                std::thread::spawn(move || {
                    pump(server, client, after, how, &int3, &stop3);
                });
            }
        });
        Proxy {
            addr,
            interrupted,
            stop,
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
    // Older snapshots (by name), plus files that are not ours.
    let old = [
        "etcd-snapshot-20200101T000000Z.db",
        "etcd-snapshot-20210101T000000Z.db",
        "etcd-snapshot-20220101T000000Z.db",
    ];
    for name in old {
        std::fs::write(dir.join(name), name).unwrap();
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
    assert!(r["diff"]["after"]["snapshots"]
        .as_array()
        .unwrap()
        .contains(&json!(would)));
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
