//! Integration test harness: a real TrustChain member in process, and
//! real `hypermesh` processes enrolled with it, on `[::1]`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stoq::crypto::read_key_file;
use trustchain::ceremony::{self, CeremonyOptions};
use trustchain::client::CaClient;
use trustchain::member::{MemberConfig, MemberNode};
use trustchain::messages::TokenCreate;
use trustchain::policy::Policy;
use trustchain::TrustBundle;

/// Upper bound of every wait.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hypermesh")
}

/// A free UDP port on [::1] (bound then released).
pub fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("[::1]:0").unwrap();
    s.local_addr().unwrap().port()
}

/// A free TCP port on [::1].
pub fn free_tcp_port() -> u16 {
    let s = std::net::TcpListener::bind("[::1]:0").unwrap();
    s.local_addr().unwrap().port()
}

/// One TrustChain member (1-of-1) in this process.
pub struct TrustChain {
    pub dir: tempfile::TempDir,
    pub bundle: Arc<TrustBundle>,
    pub bundle_file: PathBuf,
    pub admin: stoq::crypto::KeyPair,
    pub member: MemberNode,
}

impl TrustChain {
    pub async fn start() -> TrustChain {
        let dir = tempfile::tempdir().unwrap();
        let out = ceremony::run(
            &CeremonyOptions {
                members: 1,
                threshold: 1,
                zone: "mesh.".into(),
                host: Ipv6Addr::LOCALHOST,
                base_port: free_port(),
                http_base_port: 0,
                dns_base_port: 0,
                doq_base_port: 0,
                out_dir: dir.path().join("ca"),
            },
            |_| {},
        )
        .unwrap();
        let admin = read_key_file(&out.admin_key).unwrap();
        let bundle = Arc::new(out.bundle);
        let member = MemberNode::start(MemberConfig {
            data_dir: out.member_dirs[0].clone(),
            listen: Some(bundle.members[0].address),
            http_listen: None,
            policy: Policy::default(),
            sync_interval_ms: 500,
            ..MemberConfig::default()
        })
        .await
        .unwrap();
        TrustChain {
            bundle_file: out.bundle_file,
            dir,
            bundle,
            admin,
            member,
        }
    }

    /// An enrollment token for `name`.
    pub async fn token(&self, name: &str) -> String {
        let client = CaClient::unenrolled(&self.admin, self.bundle.clone()).unwrap();
        let t = client
            .create_token(
                0,
                &TokenCreate {
                    names: vec![name.to_string()],
                    ttl_secs: 600,
                    max_lifetime_secs: 0,
                },
            )
            .await
            .unwrap();
        client.endpoint().shutdown().await;
        t.to_text()
    }
}

/// Runs `hypermesh args...` to completion; panics with its output on failure.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "hypermesh {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A node directory set up with `init` and a single-validator genesis.
pub struct NodeDir {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub stoq: SocketAddr,
    pub http: SocketAddr,
    pub name: String,
}

/// Initialises a node in `root/name` with funded `accounts`
/// (64-hex-digit ids), blocks every `block_ms`.
pub async fn setup_node(tc: &TrustChain, root: &Path, name: &str, accounts: &[String], block_ms: u64) -> NodeDir {
    let dir = root.join(name);
    let stoq = SocketAddr::from((Ipv6Addr::LOCALHOST, free_port()));
    let http = SocketAddr::from((Ipv6Addr::LOCALHOST, free_tcp_port()));
    let token = tc.token(&format!("{name}.mesh")).await;
    let (d, b, l, h) = (
        dir.to_string_lossy().into_owned(),
        tc.bundle_file.to_string_lossy().into_owned(),
        stoq.to_string(),
        http.to_string(),
    );
    let bin_args = [
        "init", "--dir", &d, "--bundle", &b, "--token", &token, "--name", name, "--listen", &l, "--http", &h,
    ];
    tokio::task::spawn_blocking({
        let args: Vec<String> = bin_args.iter().map(|s| s.to_string()).collect();
        move || run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    let genesis = dir.join("genesis.toml");
    let key = dir.join("node.key");
    let mut args = vec![
        "genesis".to_string(),
        "--out".into(),
        genesis.to_string_lossy().into_owned(),
        "--validator".into(),
        format!("{}=100", key.display()),
    ];
    for a in accounts {
        args.push("--balance".into());
        args.push(format!("{a}=1000000000"));
    }
    run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let config = dir.join("hypermesh.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("block_interval_ms = 1000", &format!("block_interval_ms = {block_ms}"));
    std::fs::write(&config, text).unwrap();
    NodeDir {
        dir,
        config,
        stoq,
        http,
        name: format!("{name}.mesh"),
    }
}

/// A running `hypermesh start`.
pub struct Running {
    pub child: Child,
    pub banner: String,
}

/// The first line a started node prints on stdout (its banner), waiting
/// up to [`WAIT`]; the rest of its stdout is drained so it never blocks.
pub fn first_line(child: &mut Child) -> Result<String, std::sync::mpsc::RecvTimeoutError> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(l)) = lines.next() {
            let _ = tx.send(l);
        }
        for _ in lines {}
    });
    rx.recv_timeout(WAIT)
}

impl Running {
    /// Starts the node and waits for its banner.
    pub fn start(node: &NodeDir) -> Running {
        let mut child = Command::new(bin())
            .args(["start", "--config", &node.config.to_string_lossy(), "--log", "warn"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let banner = first_line(&mut child).expect("the node printed its banner");
        assert!(banner.contains("listening on"), "{banner}");
        Running { child, banner }
    }

    /// Kills the process with SIGKILL (no shutdown path runs).
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Stops the process with SIGTERM and waits for it to exit cleanly.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}");
                return;
            }
            assert!(start.elapsed() < WAIT, "the node did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
