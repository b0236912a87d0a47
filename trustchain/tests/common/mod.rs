//! Helpers of the TrustChain integration tests: key ceremonies on free
//! ports, member processes (`trustchain serve`) and in-process members,
//! clients, tokens and bounded waiting.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::{Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use stoq::crypto::{read_key_file, Algorithm, KeyPair};
use stoq::pki::{Certificate, ChainVerifier, KeyPurpose, VerifiedChain, POST_QUANTUM_ALGORITHMS};
use stoq::tls::{Identity, SecurityMode, TlsContext};
use stoq::{Endpoint, EndpointConfig};

use trustchain::ceremony::{self, CeremonyOptions, CeremonyOutput};
use trustchain::client::{CaClient, Enrollment};
use trustchain::member::{MemberConfig, MemberNode};
use trustchain::messages::{Issued, TokenCreate};
use trustchain::token::EnrollmentToken;
use trustchain::trust::TrustStore;
use trustchain::TrustBundle;

/// Upper bound of every wait on a condition (a process to get ready or to
/// exit, a call to return).
pub const WAIT: Duration = Duration::from_secs(20);

/// How many times a cluster start is retried on other ports when a port
/// was taken between the probe and the bind.
const START_ATTEMPTS: usize = 5;

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Awaits `fut`, at most [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// A fresh FN-DSA-1024 key.
pub fn key() -> KeyPair {
    KeyPair::generate(Algorithm::FnDsa1024)
}

/// A base port such that `base..base + n` are free UDP ports (or TCP
/// ports, with `tcp`) on `[::1]` right now. Ports are drawn below the
/// kernel's ephemeral range (32768 and up), so endpoints of other tests
/// binding `[::1]:0` cannot take them.
pub fn free_port_range(n: usize, tcp: bool) -> u16 {
    for _ in 0..200 {
        let base: u16 = 20_000 + rand::random::<u16>() % (32_000 - 20_000 - n as u16);
        let addr = |i: usize| SocketAddr::from((Ipv6Addr::LOCALHOST, base + i as u16));
        let free = if tcp {
            let probes: Vec<_> = (0..n).map(|i| TcpListener::bind(addr(i))).collect();
            probes.iter().all(Result::is_ok)
        } else {
            let probes: Vec<_> = (0..n).map(|i| UdpSocket::bind(addr(i))).collect();
            probes.iter().all(Result::is_ok)
        };
        if free {
            return base;
        }
    }
    panic!("found no {n} consecutive free ports on [::1]");
}

/// [`free_port_range`] for UDP (STOQ).
pub fn free_base_port(n: usize) -> u16 {
    free_port_range(n, false)
}

/// Runs the key ceremony for `n` members with threshold `k` into `out`, on
/// free ports (STOQ and HTTP; no DNS).
///
/// HTTP is enabled on free ports although the tests do not read it: with
/// `http_base_port: 0` ("no HTTP") members used to bind the default
/// `[::1]:7480` all the same (see `ceremony_without_http_writes_configs_
/// without_http` in `cluster.rs`), so clusters would collide.
pub fn ceremony(out: &Path, n: usize, k: u16) -> CeremonyOutput {
    let opts = CeremonyOptions {
        members: n,
        threshold: k,
        zone: "mesh.".into(),
        host: Ipv6Addr::LOCALHOST,
        base_port: free_base_port(n),
        http_base_port: free_port_range(n, true),
        dns_base_port: 0,
        out_dir: out.to_path_buf(),
        ..CeremonyOptions::default()
    };
    ceremony::run(&opts, |_| {}).expect("key ceremony")
}

/// A temporary directory, kept after the test when `TC_TEST_KEEP` is set
/// (its path is printed).
pub fn temp_dir() -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix("trustchain-test-");
    if std::env::var_os("TC_TEST_KEEP").is_some() {
        builder.disable_cleanup(true);
    }
    let dir = builder.tempdir().expect("temp dir");
    if std::env::var_os("TC_TEST_KEEP").is_some() {
        eprintln!("test files kept in {}", dir.path().display());
    }
    dir
}

/// Whether a start failure means a port was taken (worth another try on
/// other ports).
fn port_taken(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("address already in use") || m.contains("addrinuse") || m.contains("os error 98")
}

/// The last lines of a log file, for failure messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// One `trustchain serve` process. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct MemberProcess {
    /// The member index.
    pub index: u16,
    /// Its `trustchain.toml`.
    pub config: PathBuf,
    /// Where its stderr (the log) goes; each start appends.
    pub log: PathBuf,
    child: Option<Child>,
}

impl MemberProcess {
    /// Starts `trustchain serve --config <config>` and waits until it
    /// prints its ready line. On failure returns the log's tail.
    pub async fn spawn(index: u16, config: &Path) -> Result<Self, String> {
        let log = config.with_file_name("serve.log");
        let mut p = MemberProcess {
            index,
            config: config.to_path_buf(),
            log,
            child: None,
        };
        p.start().await?;
        Ok(p)
    }

    /// Whether the process runs (as far as this handle knows).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// (Re)starts the process and waits for its ready line.
    pub async fn start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "member {} is already running", self.index);
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("opening {}: {e}", self.log.display()))?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_trustchain"));
        command.arg("serve").arg("--config").arg(&self.config);
        // TC_TEST_MEMBER_LOG=trustchain=debug,stoq=debug: more detail in
        // the members' logs (kept with TC_TEST_KEEP=1).
        if let Ok(filter) = std::env::var("TC_TEST_MEMBER_LOG") {
            command.arg("--log").arg(filter);
        }
        let mut child = command
            .env("RUST_BACKTRACE", "0")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawning trustchain serve: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            // Keep draining after the ready line so the member never blocks
            // on a full pipe.
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        let ready = tokio::time::timeout(WAIT, async {
            while let Some(line) = rx.recv().await {
                if line.contains("listening on") {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match ready {
            Ok(Some(line)) => {
                let want = format!("trustchain member {} listening on", self.index);
                if !line.contains(&want) {
                    let _ = child.start_kill();
                    return Err(format!("unexpected ready line {line:?}, wanted {want:?}"));
                }
                self.child = Some(child);
                Ok(())
            }
            Ok(None) => {
                // stdout closed: the process is exiting.
                let status = tokio::time::timeout(WAIT, child.wait()).await;
                Err(format!(
                    "member {} exited before it was ready ({status:?}); log:\n{}",
                    self.index,
                    log_tail(&self.log)
                ))
            }
            Err(_) => {
                let _ = child.start_kill();
                Err(format!(
                    "member {} printed no ready line within {WAIT:?}; log:\n{}",
                    self.index,
                    log_tail(&self.log)
                ))
            }
        }
    }

    /// SIGKILL and wait for the exit.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            within("a killed member to exit", child.wait())
                .await
                .expect("waiting for a killed member");
        }
    }

    /// SIGTERM (a clean shutdown) and wait for the exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("member is running");
        let pid = child.id().expect("running member has a pid");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        within("a terminated member to exit", child.wait())
            .await
            .expect("waiting for a terminated member")
    }
}

impl Drop for MemberProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// A CA whose members run as `trustchain serve` processes.
pub struct Cluster {
    /// Holds every file (removed when the cluster is dropped).
    pub dir: tempfile::TempDir,
    /// What the ceremony wrote.
    pub ca: CeremonyOutput,
    /// The bundle.
    pub bundle: Arc<TrustBundle>,
    /// The admin key.
    pub admin_key: KeyPair,
    /// The members, by index.
    pub members: Vec<MemberProcess>,
}

impl Cluster {
    /// A ceremony for `n` members with threshold `k`, every member started.
    pub async fn start(n: usize, k: u16) -> Cluster {
        let dir = temp_dir();
        let mut last = String::new();
        for attempt in 0..START_ATTEMPTS {
            let out = dir.path().join(format!("ca-{attempt}"));
            let ca = ceremony(&out, n, k);
            let starts = ca.member_dirs.iter().enumerate().map(|(i, d)| {
                let config = d.join("trustchain.toml");
                async move { MemberProcess::spawn(i as u16, &config).await }
            });
            let results = futures_util::future::join_all(starts).await;
            if results.iter().all(Result::is_ok) {
                let members = results.into_iter().map(Result::unwrap).collect();
                let admin_key = read_key_file(&ca.admin_key).expect("admin key");
                return Cluster {
                    bundle: Arc::new(ca.bundle.clone()),
                    dir,
                    ca,
                    admin_key,
                    members,
                };
            }
            let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
            last = errors.join("\n---\n");
            if !errors.iter().any(|e| port_taken(e)) {
                break;
            }
            // The members that did start are killed when `results` drops.
        }
        panic!("starting the cluster failed:\n{last}");
    }

    /// The bundle file.
    pub fn bundle_file(&self) -> &Path {
        &self.ca.bundle_file
    }

    /// Member `i`'s data dir.
    pub fn member_dir(&self, i: usize) -> &Path {
        &self.ca.member_dirs[i]
    }

    /// A client with the admin key.
    pub fn admin(&self) -> CaClient {
        CaClient::unenrolled(&self.admin_key, self.bundle.clone()).expect("admin client")
    }

    /// A client for `key` (not enrolled).
    pub fn client(&self, key: &KeyPair) -> CaClient {
        CaClient::unenrolled(key, self.bundle.clone()).expect("client")
    }

    /// A token from member `at` for `names`.
    pub async fn token(&self, at: u16, names: &[&str]) -> EnrollmentToken {
        token(&self.admin(), at, names).await
    }

    /// Kills (SIGKILL) member `i`.
    pub async fn kill(&mut self, i: usize) {
        self.members[i].kill().await;
    }

    /// Restarts member `i` (same config, same data dir and port).
    pub async fn restart(&mut self, i: usize) {
        if let Err(e) = self.members[i].start().await {
            panic!("restarting member {i}: {e}");
        }
    }
}

/// Asks member `at` for a token allowing `names`, valid 10 minutes.
pub async fn token(admin: &CaClient, at: u16, names: &[&str]) -> EnrollmentToken {
    let req = TokenCreate {
        names: names.iter().map(|n| n.to_string()).collect(),
        ttl_secs: 600,
        max_lifetime_secs: 0,
    };
    within("token creation", admin.create_token(at, &req))
        .await
        .unwrap_or_else(|e| panic!("creating a token at member {at}: {e}"))
}

/// What to ask for: `names`, everything else default.
pub fn names(names: &[&str]) -> Enrollment {
    Enrollment {
        names: names.iter().map(|n| n.to_string()).collect(),
        ..Enrollment::default()
    }
}

/// Enrolls `key` for `names` at member `at` with its own client.
pub async fn enroll_at(
    bundle: &Arc<TrustBundle>,
    at: u16,
    key: &KeyPair,
    token: &EnrollmentToken,
    what: &[&str],
) -> trustchain::Result<Issued> {
    let client = CaClient::unenrolled(key, bundle.clone())?;
    within("enrollment", client.enroll_at(at, key, token, &names(what))).await
}

/// Member `i`'s status as JSON.
pub async fn status(client: &CaClient, i: u16) -> serde_json::Value {
    let text = within("status", client.status(i))
        .await
        .unwrap_or_else(|e| panic!("status of member {i}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status of member {i} is not JSON ({e}): {text}"))
}

/// `certificates_issued` and `log_size` of member `i`.
pub async fn issued_and_size(client: &CaClient, i: u16) -> (u64, u64) {
    let s = status(client, i).await;
    (
        s["certificates_issued"].as_u64().expect("certificates_issued"),
        s["log_size"].as_u64().expect("log_size"),
    )
}

/// A chain verifier for `bundle` backed by `trust`.
pub fn verifier(bundle: &TrustBundle, trust: &Arc<TrustStore>) -> ChainVerifier {
    ChainVerifier::new(bundle.trust_anchors().expect("anchors"), POST_QUANTUM_ALGORITHMS).with_check(trust.check())
}

/// Verifies `cert` as a TLS client certificate now.
pub fn verify_client(
    verifier: &ChainVerifier,
    cert: &Certificate,
) -> Result<VerifiedChain, stoq::pki::CertificateError> {
    verifier.verify(cert.der(), &[], &KeyPurpose::Client, std::time::SystemTime::now())
}

/// A STOQ endpoint on `[::1]:0` presenting `cert` (held with `key`) and
/// accepting peers TrustChain certified (checked against `trust`).
pub fn trustchain_endpoint(
    bundle: &TrustBundle,
    trust: &Arc<TrustStore>,
    cert: &Certificate,
    key: &KeyPair,
) -> stoq::Result<Endpoint> {
    let tls = TlsContext::new(
        SecurityMode::PostQuantum,
        Identity::new(vec![cert.clone()], key.clone())?,
        None,
        bundle.trust_anchors().expect("anchors"),
        vec![trust.check()],
    )?;
    let mut config = EndpointConfig {
        listen: SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
        ..EndpointConfig::default()
    };
    // A refused handshake is reported at once rather than retried.
    config.reconnect.max_attempts = 1;
    Endpoint::bind(config, tls)
}

/// A CA whose members run in this process.
pub struct InProcessCa {
    /// Holds every file.
    pub dir: tempfile::TempDir,
    /// What the ceremony wrote.
    pub ca: CeremonyOutput,
    /// The bundle.
    pub bundle: Arc<TrustBundle>,
    /// The admin key.
    pub admin_key: KeyPair,
    /// The running members.
    pub members: Vec<MemberNode>,
}

impl InProcessCa {
    /// A ceremony for `n` members with threshold `k`, every member started
    /// in this process (no HTTP).
    pub async fn start(n: usize, k: u16) -> InProcessCa {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut last = String::new();
        'attempts: for attempt in 0..START_ATTEMPTS {
            let ca = ceremony(&dir.path().join(format!("ca-{attempt}")), n, k);
            let mut members = Vec::new();
            for d in &ca.member_dirs {
                let config = MemberConfig {
                    data_dir: d.clone(),
                    listen: None,
                    http_listen: None,
                    ..MemberConfig::default()
                };
                match MemberNode::start(config).await {
                    Ok(m) => members.push(m),
                    Err(e) => {
                        last = e.to_string();
                        for m in members {
                            m.shutdown().await;
                        }
                        if port_taken(&last) {
                            continue 'attempts;
                        }
                        break 'attempts;
                    }
                }
            }
            let admin_key = read_key_file(&ca.admin_key).expect("admin key");
            return InProcessCa {
                bundle: Arc::new(ca.bundle.clone()),
                dir,
                ca,
                admin_key,
                members,
            };
        }
        panic!("starting the in-process CA failed: {last}");
    }

    /// A client with the admin key.
    pub fn admin(&self) -> CaClient {
        CaClient::unenrolled(&self.admin_key, self.bundle.clone()).expect("admin client")
    }

    /// Member `i`'s key, read from its data dir.
    pub fn member_key(&self, i: usize) -> KeyPair {
        read_key_file(&self.ca.member_dirs[i].join("member.key")).expect("member key")
    }

    /// Stops every member.
    pub async fn shutdown(self) {
        for m in self.members {
            m.shutdown().await;
        }
    }
}
