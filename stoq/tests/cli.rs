//! End-to-end tests of the `stoq` binary: keys, a development CA, a server
//! and a client talking over a post-quantum handshake on [::1], metrics and
//! graceful shutdown.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const STOQ: &str = env!("CARGO_BIN_EXE_stoq");

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(STOQ);
    cmd.args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG");
    cmd
}

fn stoq(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `stoq args` and returns its stdout, failing the test on a non-zero
/// exit.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = stoq(dir, args);
    assert!(
        out.status.success(),
        "stoq {args:?} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `stoq args`, expects a non-zero exit, and returns its stderr.
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = stoq(dir, args);
    assert!(
        !out.status.success(),
        "stoq {args:?} should have failed:\n{}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// A running `stoq serve`, killed on drop if the test did not stop it.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    listen: String,
    metrics: String,
    stderr: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path, args: &[&str]) -> Server {
    let stderr = dir.join("serve.stderr");
    let mut child = command(dir, args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut metrics = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "serve did not start ({e}): {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            }
        };
        if let Some(url) = line.strip_prefix("metrics on http://") {
            metrics = url.trim_end_matches("/metrics").to_string();
        }
        if let Some(addr) = line.strip_prefix("listening on ") {
            return Server {
                child,
                lines,
                listen: addr.trim().to_string(),
                metrics,
                stderr,
            };
        }
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request; returns the whole response.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn pki_serve_ping_metrics_and_graceful_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // Keys and a development CA.
    let out = ok(dir, &["keygen", "--out", "server.key"]);
    assert!(out.contains("node id:") && out.contains("server.pub"), "{out}");
    assert_eq!(mode(&dir.join("server.key")), 0o600);
    assert!(std::fs::read_to_string(dir.join("server.pub"))
        .unwrap()
        .contains("BEGIN PUBLIC KEY"));
    ok(dir, &["keygen", "--out", "client.key"]);
    ok(dir, &["ca", "init", "--dir", "ca"]);
    assert_eq!(mode(&dir.join("ca/ca.key")), 0o600);
    ok(
        dir,
        &[
            "ca",
            "issue",
            "--ca-dir",
            "ca",
            "--key",
            "server.key",
            "--name",
            "node-1.mesh",
            "--out",
            "server.pem",
        ],
    );
    // The CA needs only the public key.
    let out = ok(
        dir,
        &[
            "ca",
            "issue",
            "--ca-dir",
            "ca",
            "--key",
            "client.pub",
            "--name",
            "client-1.mesh",
            "--hours",
            "1",
            "--out",
            "client.pem",
        ],
    );
    assert!(out.contains("client-1.mesh"), "{out}");
    let pem = std::fs::read_to_string(dir.join("server.pem")).unwrap();
    assert_eq!(
        pem.matches("BEGIN CERTIFICATE").count(),
        1,
        "the leaf only, never the root"
    );

    // Server: paths from a config file, listen address from the flag.
    std::fs::write(
        dir.join("stoq.toml"),
        "metrics_listen = \"[::1]:0\"\n[endpoint]\nlisten = \"[::1]:4433\"\n\
         [tls]\ncert = \"server.pem\"\nkey = \"server.key\"\ntrust = \"ca/ca.pem\"\n",
    )
    .unwrap();
    let mut server = start_server(dir, &["serve", "--config", "stoq.toml", "--listen", "[::1]:0"]);
    assert!(
        server.listen.starts_with("[::1]:") && !server.listen.ends_with(":0"),
        "{}",
        server.listen
    );
    assert!(server.metrics.starts_with("[::1]:"), "metrics address not printed");
    let addr = server.listen.clone();
    let client = [
        "--name",
        "node-1.mesh",
        "--cert",
        "client.pem",
        "--key",
        "client.key",
        "--trust",
        "ca/ca.pem",
    ];

    let mut args = vec!["ping", addr.as_str()];
    args.extend(client);
    args.extend(["--count", "2", "--interval-ms", "50", "--message", "hi"]);
    let out = ok(dir, &args);
    assert!(out.contains("reply \"hi\""), "{out}");
    assert!(out.contains("handshake") && out.contains("node-1.mesh"), "{out}");
    assert!(
        out.contains("2 sent, 2 received") && out.contains("rtt min/avg/max/p50"),
        "{out}"
    );

    let mut args = vec!["--json", "ping", addr.as_str()];
    args.extend(client);
    args.extend(["--count", "1", "--message", "hi"]);
    let json: serde_json::Value = serde_json::from_str(ok(dir, &args).trim()).unwrap();
    assert_eq!(json["echo"]["reply"], "hi");
    assert_eq!(json["received"], 1);
    assert_eq!(json["peer"]["names"][0], "node-1.mesh");

    // The server's certificate is not valid for another name.
    let mut args = vec!["ping", addr.as_str()];
    args.extend(client);
    args.extend(["--name", "other.mesh", "--count", "1", "--timeout-ms", "2000"]);
    fails(dir, &args);

    let metrics = http_get(&server.metrics, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    assert!(metrics.contains("application/openmetrics-text"), "{metrics}");
    let established = metrics
        .lines()
        .find(|l| l.starts_with("stoq_connections_established"))
        .unwrap_or_else(|| panic!("no stoq_connections_established in {metrics}"));
    let count: f64 = established.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(count >= 2.0, "{established}");
    assert!(http_get(&server.metrics, "/other").starts_with("HTTP/1.1 404"));

    // SIGTERM stops it gracefully.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = wait_exit(&mut server.child, Duration::from_secs(15));
    let rest: Vec<String> = server.lines.try_iter().collect();
    assert!(
        status.success(),
        "serve exited with {status}: {rest:?}\n{}",
        std::fs::read_to_string(&server.stderr).unwrap_or_default()
    );
    assert!(rest.iter().any(|l| l == "stopped"), "{rest:?}");
}

#[test]
fn ipv4_addresses_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(tmp.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert!(err.contains("IPv6"), "{err}");
    let err = fails(
        tmp.path(),
        &["serve", "--listen", "[::1]:0", "--metrics", "127.0.0.1:9464"],
    );
    assert!(err.contains("IPv6"), "{err}");
    let err = fails(
        tmp.path(),
        &[
            "ping",
            "127.0.0.1:4433",
            "--name",
            "a.mesh",
            "--cert",
            "c.pem",
            "--key",
            "c.key",
            "--trust",
            "ca.pem",
        ],
    );
    assert!(err.contains("IPv6"), "{err}");
}

#[test]
fn existing_files_are_kept_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = ok(dir, &["--json", "keygen", "--out", "node.key", "--alg", "ed25519"]);
    let first: serde_json::Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(first["algorithm"], "ed25519");
    let err = fails(dir, &["keygen", "--out", "node.key"]);
    assert!(err.contains("--force"), "{err}");
    let second = ok(dir, &["--json", "keygen", "--out", "node.key", "--force"]);
    let second: serde_json::Value = serde_json::from_str(second.trim()).unwrap();
    assert_ne!(first["node_id"], second["node_id"]);
    assert_eq!(mode(&dir.join("node.key")), 0o600);

    let err = fails(
        dir,
        &[
            "ca", "issue", "--ca-dir", "ca", "--key", "node.key", "--name", "n.mesh", "--out", "n.pem",
        ],
    );
    assert!(err.contains("stoq ca init"), "{err}");
    ok(dir, &["ca", "init", "--dir", "ca", "--days", "30"]);
    let err = fails(dir, &["ca", "init", "--dir", "ca"]);
    assert!(err.contains("--force"), "{err}");
    ok(
        dir,
        &[
            "ca", "issue", "--ca-dir", "ca", "--key", "node.key", "--name", "n.mesh", "--out", "n.pem",
        ],
    );
    let err = fails(
        dir,
        &[
            "ca", "issue", "--ca-dir", "ca", "--key", "node.key", "--name", "n.mesh", "--out", "n.pem",
        ],
    );
    assert!(err.contains("--force"), "{err}");
    let err = fails(
        dir,
        &[
            "ca",
            "issue",
            "--ca-dir",
            "ca",
            "--key",
            "node.key",
            "--name",
            "not a name",
            "--out",
            "x.pem",
        ],
    );
    assert!(err.contains("DNS name"), "{err}");
}
