//! Helpers of the DNS integration tests: a throw-away FALCON PKI, a server
//! on `[::1]` with ephemeral ports, `dig`, raw packets and bounded waits.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use stoq::crypto::{Algorithm, KeyPair};
use stoq::pki::{issue, CertKind, Certificate, CertificateParams, Issuer, TrustAnchors};
use stoq::tls::{Identity, SecurityMode, TlsContext};

pub const DAY: Duration = Duration::from_secs(86_400);
/// Upper bound of every wait.
pub const WAIT: Duration = Duration::from_secs(20);

static ROOTS: AtomicUsize = AtomicUsize::new(0);

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A FN-DSA-1024 root CA and its issuer.
pub struct TestPki {
    pub root: Certificate,
    pub issuer: Issuer,
}

impl TestPki {
    pub fn new() -> Self {
        let n = ROOTS.fetch_add(1, Ordering::Relaxed);
        let subject = format!("CN=DNS Test Root {n},O=Stack,C=NL");
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let issuer = Issuer::self_signed(key.clone(), &subject).unwrap();
        let root = issue(
            &CertificateParams::new(CertKind::Root, &subject, 10 * DAY),
            key.public_key(),
            &issuer,
        )
        .unwrap();
        let issuer = Issuer::from_certificate(&root, key).unwrap();
        TestPki { root, issuer }
    }

    /// A fresh key and a leaf certificate valid for `names`.
    pub fn identity(&self, names: &[&str]) -> Identity {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let params = CertificateParams::new(CertKind::Leaf, format!("CN={}", names[0]), DAY)
            .with_dns_names(names.iter().copied());
        let cert = issue(&params, key.public_key(), &self.issuer).unwrap();
        Identity::new(vec![cert], key).unwrap()
    }

    pub fn anchors(&self) -> TrustAnchors {
        TrustAnchors::new([self.root.clone()]).unwrap()
    }

    /// A post-quantum TLS context for `names`, trusting this root.
    pub fn tls(&self, names: &[&str]) -> TlsContext {
        TlsContext::new(
            SecurityMode::PostQuantum,
            self.identity(names),
            None,
            self.anchors(),
            vec![],
        )
        .unwrap()
    }
}

/// `[::1]:0`.
pub fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
}

/// Awaits `fut`, at most [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Waits until `cond` holds, checking every 10 ms, at most [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let poll = async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    within(what, poll).await
}

/// What `dig` printed: the status, the header flags and the answer section
/// as (name, type, data).
#[derive(Debug)]
pub struct Dig {
    pub status: String,
    pub flags: String,
    pub answers: Vec<(String, String, String)>,
    pub output: String,
}

impl Dig {
    /// The data of the answers of type `rtype`.
    pub fn data(&self, rtype: &str) -> Vec<String> {
        self.answers
            .iter()
            .filter(|a| a.1 == rtype)
            .map(|a| a.2.clone())
            .collect()
    }
}

/// Runs `dig @server -p port [+tcp] name rtype` (one try, 3 s).
pub async fn dig(server: SocketAddr, tcp: bool, name: &str, rtype: &str) -> Dig {
    let mut cmd = tokio::process::Command::new("dig");
    cmd.arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=3", "+tries=1", "+norecurse", "+noall", "+comments", "+answer"]);
    if tcp {
        cmd.arg("+tcp");
    }
    cmd.args([name, rtype]).kill_on_drop(true);
    let out = match within("dig", cmd.output()).await {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`dig` is not installed: apt-get install -y bind9-dnsutils")
        }
        Err(e) => panic!("running dig: {e}"),
    };
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dig {name} {rtype} failed: {output}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = output
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in dig output:\n{output}"))
        .to_string();
    let flags = output
        .split("flags: ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or_default()
        .to_string();
    let answers = output
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5 && f[2] == "IN").then(|| (f[0].to_string(), f[3].to_string(), f[4..].join(" ")))
        })
        .collect();
    Dig {
        status,
        flags,
        answers,
        output,
    }
}

/// A DNS query header: id, flags, then the four section counts.
pub fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut h = Vec::with_capacity(12);
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        h.extend_from_slice(&c.to_be_bytes());
    }
    h
}

/// Malformed DNS messages: random bytes (seeded), truncated headers, huge
/// label and section counts, compression-pointer loops, a response.
pub fn malformed_packets() -> Vec<Vec<u8>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x00D5_F022);
    let mut packets: Vec<Vec<u8>> = (0..64)
        .map(|_| {
            let len = rng.gen_range(0..700);
            (0..len).map(|_| rng.gen()).collect()
        })
        .collect();
    // Truncated headers.
    packets.push(vec![]);
    packets.push(vec![0x12]);
    packets.push(header(7, 0x0100, [1, 0, 0, 0])[..11].to_vec());
    // A header promising a question that is not there, and maximal counts.
    packets.push(header(8, 0x0100, [1, 0, 0, 0]));
    packets.push(header(9, 0x0100, [u16::MAX; 4]));
    // A name of 300 one-byte labels (over 255 bytes), then qtype/qclass.
    let mut many = header(10, 0x0100, [1, 0, 0, 0]);
    for _ in 0..300 {
        many.extend_from_slice(&[1, b'a']);
    }
    many.extend_from_slice(&[0, 0, 28, 0, 1]);
    packets.push(many);
    // 127 labels of 63 bytes: 8 KiB of labels without a terminator.
    let mut long = header(11, 0x0100, [1, 0, 0, 0]);
    for _ in 0..127 {
        long.push(63);
        long.extend_from_slice(&[b'x'; 63]);
    }
    packets.push(long);
    packets.push(pointer_loop(12));
    // Two pointers pointing at each other.
    let mut pair = header(13, 0x0100, [1, 0, 0, 0]);
    pair.extend_from_slice(&[0xC0, 14, 0xC0, 12, 0, 28, 0, 1]);
    packets.push(pair);
    // A label length running past the end.
    let mut past = header(14, 0x0100, [1, 0, 0, 0]);
    past.extend_from_slice(&[60, b'a', b'b']);
    packets.push(past);
    // A "response" (QR set): must not be reflected.
    let mut response = header(15, 0x8180, [1, 0, 0, 0]);
    response.extend_from_slice(&[4, b'm', b'e', b's', b'h', 0, 0, 6, 0, 1]);
    packets.push(response);
    packets
}

/// A query whose name is a compression pointer to itself.
pub fn pointer_loop(id: u16) -> Vec<u8> {
    let mut p = header(id, 0x0100, [1, 0, 0, 0]);
    p.extend_from_slice(&[0xC0, 12, 0, 28, 0, 1]);
    p
}
