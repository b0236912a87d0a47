//! Members replicate each other's DNS zones (`tc.zone.feed`): a name
//! enrolled through one member resolves at every member, follows a renewal
//! through another member (the newest notBefore wins), disappears from
//! every member when revoked, and a member that was down catches up from
//! the cursor it persisted. `dig` asks each member's DNS over UDP; one
//! 3-member, 2-of-3 in-process cluster per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inproc;

use bytes::Bytes;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{interval, Interval, MissedTickBehavior};

use inproc::{wait_for, Cluster};
use stoq::crypto::{hex, Algorithm, KeyPair};
use stoq::endpoint::RpcError;
use stoq::pki::Certificate;
use stoq::tls::{Identity, SecurityMode, TlsContext};
use stoq::{Endpoint, EndpointConfig};
use trustchain::checkpoint::Checkpoint;
use trustchain::client::{CaClient, Enrollment};
use trustchain::member::{MemberConfig, MemberNode};
use trustchain::messages::{method, Issued, ZoneFeedRequest, ZoneFeedResponse};
use trustchain::policy::Policy;
use trustchain::request::{EnrollmentRequest, RequestBody, Service};
use trustchain::revocation::{reason, RevocationRequest, RevocationStatement};
use trustchain::store::Store;
use trustchain::time::now_ms;
use trustchain::trust::{CertificateStatus, TrustStore};
use trustchain::Refusal;

/// How long replication may take before a test fails.
const DEADLINE: Duration = Duration::from_secs(10);
/// How often a condition is re-checked.
const PACE: Duration = Duration::from_millis(50);
/// Deadline of one RPC.
const CALL: Duration = Duration::from_secs(10);
/// The service every test certificate publishes (one SRV record).
const SERVICE: &str = "_stoq._udp";

fn pace() -> Interval {
    let mut tick = interval(PACE);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

// --- DNS ------------------------------------------------------------------

/// `dig +short` at `[::1]:port`; a failed query returns a text no answer
/// can equal, so a wait goes on and its final message shows it.
async fn dig(port: u16, qtype: &str, name: &str) -> String {
    let out = tokio::process::Command::new("dig")
        .args([
            "@::1",
            "-p",
            &port.to_string(),
            "+short",
            "+time=2",
            "+tries=1",
            qtype,
            name,
        ])
        .output()
        .await
        .expect("dig is missing: apt-get install -y bind9-dnsutils");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        stdout
    } else {
        format!(
            "dig failed ({}): {stdout} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

/// What one member's DNS answers for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    aaaa: String,
    txt: String,
    srv: String,
}

impl Answer {
    /// The records `cert` publishes for `name` (services on `port`).
    fn of(cert: &Certificate, name: &str, port: u16) -> Answer {
        Answer {
            aaaa: "::1".into(),
            txt: format!("\"tc-fp={}\"", hex(&cert.fingerprint())),
            srv: format!("0 0 {port} {name}."),
        }
    }

    /// No record at all (the server answered, with nothing).
    fn absent() -> Answer {
        Answer {
            aaaa: String::new(),
            txt: String::new(),
            srv: String::new(),
        }
    }
}

async fn lookup(cluster: &Cluster, member: usize, name: &str) -> Answer {
    let port = cluster.dns_ports[member].0;
    let (host, srv) = (format!("{name}."), format!("{SERVICE}.{name}."));
    let (aaaa, txt, srv) = tokio::join!(
        dig(port, "AAAA", &host),
        dig(port, "TXT", &host),
        dig(port, "SRV", &srv)
    );
    Answer { aaaa, txt, srv }
}

/// Asserts what `member` answers now, without waiting.
async fn assert_answers(cluster: &Cluster, member: usize, name: &str, want: &Answer, what: &str) {
    assert_eq!(
        &lookup(cluster, member, name).await,
        want,
        "{what}: member {member}, {name}"
    );
}

/// Polls `members` every [`PACE`] until they all answer `want` for `name`;
/// fails after [`DEADLINE`]. Returns the time it took.
async fn converge(cluster: &Cluster, members: &[usize], name: &str, want: &Answer, what: &str) -> Duration {
    let start = Instant::now();
    let mut tick = pace();
    loop {
        tick.tick().await;
        let mut wrong = Vec::new();
        for &m in members {
            let got = lookup(cluster, m, name).await;
            if &got != want {
                wrong.push((m, got));
            }
        }
        if wrong.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: after {:?}, members still answer {wrong:?} for {name}, not {want:?}",
            start.elapsed()
        );
    }
}

/// Asserts `members` answer `want` for `name` at every tick for `ticks`
/// ticks (a removal that should not happen has time to show).
async fn assert_stays(cluster: &Cluster, members: &[usize], name: &str, want: &Answer, ticks: usize, what: &str) {
    let mut tick = pace();
    for _ in 0..ticks {
        tick.tick().await;
        for &m in members {
            assert_answers(cluster, m, name, want, what).await;
        }
    }
}

// --- nodes ----------------------------------------------------------------

fn service(port: u16) -> Vec<Service> {
    vec![Service {
        name: SERVICE.into(),
        port,
    }]
}

/// A node enrolled through a chosen member, with an endpoint presenting
/// its first certificate.
struct Enrolled {
    key: KeyPair,
    cert: Certificate,
    /// Where the certificate is logged: (log, leaf index).
    logged: (u16, u64),
    /// The checkpoint of the batch that logged it.
    checkpoint: Checkpoint,
    endpoint: Endpoint,
}

/// The log and index `cert` is logged at, as `trust` sees it.
fn logged_at(trust: &TrustStore, cert: &Certificate) -> (u16, u64) {
    match trust.verify_certificate(cert) {
        Ok(CertificateStatus::Logged { log_id, leaf_index }) => (log_id, leaf_index),
        other => panic!("certificate not logged: {other:?}"),
    }
}

impl Enrolled {
    /// Enrolls `name` (publishing `SERVICE` on `port`) through `member`.
    async fn at(cluster: &Cluster, member: u16, name: &str, port: u16) -> Enrolled {
        let token = cluster.token(&[name]).await;
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let client = CaClient::unenrolled(&key, cluster.bundle.clone()).unwrap();
        let what = Enrollment {
            names: vec![name.into()],
            services: service(port),
            ..Enrollment::default()
        };
        let issued = client
            .enroll_at(member, &key, &token, &what)
            .await
            .unwrap_or_else(|e| panic!("enrolling {name} through member {member}: {e}"));
        client.endpoint().shutdown().await;
        let trust = TrustStore::new(cluster.bundle.clone());
        trust.add_checkpoint(issued.checkpoint.clone()).unwrap();
        let logged = logged_at(&trust, &issued.certificate);
        assert_eq!(logged.0, member, "{name} was issued by member {member}");
        let tls = TlsContext::new(
            SecurityMode::PostQuantum,
            Identity::new(vec![issued.certificate.clone()], key.clone()).unwrap(),
            None,
            cluster.bundle.trust_anchors().unwrap(),
            vec![trust.check()],
        )
        .unwrap();
        let endpoint = Endpoint::bind(
            EndpointConfig {
                listen: SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
                ..EndpointConfig::default()
            },
            tls,
        )
        .unwrap();
        Enrolled {
            key,
            cert: issued.certificate,
            logged,
            checkpoint: issued.checkpoint,
            endpoint,
        }
    }

    /// Renews `current` (this node's key) through `member` over tc.renew,
    /// publishing `SERVICE` on `port` now.
    async fn renew_at(
        &self,
        cluster: &Cluster,
        member: u16,
        current: &Certificate,
        name: &str,
        port: u16,
    ) -> Certificate {
        let client = CaClient::with_endpoint(self.endpoint.clone(), cluster.bundle.clone());
        let conn = client.connect(member).await.unwrap();
        let nonce = conn.call(method::NONCE, Bytes::new(), Some(CALL)).await.unwrap();
        let body = RequestBody {
            bundle_id: cluster.bundle.id(),
            subject: self.key.public_key().clone(),
            names: vec![name.into()],
            address: Ipv6Addr::LOCALHOST,
            services: service(port),
            lifetime_secs: 0,
            nonce: nonce.as_ref().try_into().expect("a nonce"),
        };
        let request = EnrollmentRequest::renewal(body, current.clone(), &self.key, &self.key).unwrap();
        let resp = conn
            .call(method::RENEW, Bytes::from(request.encode()), Some(CALL))
            .await
            .unwrap_or_else(|e| panic!("renewing {name} through member {member}: {e}"));
        let issued = Issued::decode(&resp).unwrap();
        assert_eq!(issued.checkpoint.body.log_id, member, "renewed by member {member}");
        issued.certificate
    }
}

/// Waits until a certificate issued now gets a later notBefore than
/// `cert`: notBefore is now less the clock skew, in whole seconds.
async fn next_second_after(cluster: &Cluster, cert: &Certificate) {
    let target = cert.not_before() + Duration::from_secs(cluster.policy.clock_skew_secs + 1);
    let mut tick = pace();
    while SystemTime::now() < target {
        tick.tick().await;
    }
}

/// Revokes `cert` with the admin key (through whichever member takes it)
/// and waits until every running member's trust store knows.
async fn revoke(cluster: &Cluster, cert: &Certificate) {
    let st =
        RevocationStatement::for_certificate(&cluster.bundle, cert, reason::CESSATION_OF_OPERATION, now_ms()).unwrap();
    let admin = cluster.admin_client();
    let signed = admin
        .revoke(&RevocationRequest::by_admin(st, &cluster.admin).unwrap())
        .await
        .unwrap();
    admin.endpoint().shutdown().await;
    let (log, serial) = (signed.statement.issuer_log, signed.statement.serial.clone());
    for m in cluster.members.iter().flatten() {
        wait_for(m.trust(), "the revocation", || m.trust().is_revoked(log, &serial)).await;
    }
}

fn member(cluster: &Cluster, i: usize) -> &MemberNode {
    cluster.members[i].as_ref().expect("member running")
}

// --- tests ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_serves_names_through_renewal_and_revocation() {
    let cluster = Cluster::start_with_dns(3, 2, Policy::default(), true).await;
    let all = [0, 1, 2];
    let name = "db-1.mesh";

    // Enrolled through member 0: member 0 answers at once (the zone is
    // committed with the batch), members 1 and 2 once they replicated.
    let node = Enrolled::at(&cluster, 0, name, 7001).await;
    let first = node.cert.clone();
    assert_answers(&cluster, 0, name, &Answer::of(&first, name, 7001), "the issuing member").await;
    let t = converge(
        &cluster,
        &all,
        name,
        &Answer::of(&first, name, 7001),
        "enrolled through 0",
    )
    .await;
    println!("enrolled through member 0: served by members 1 and 2 after {t:?}");

    // Renewed through member 1, a second later: the newer notBefore wins
    // everywhere, member 0 included, which issued the older certificate.
    next_second_after(&cluster, &first).await;
    let second = node.renew_at(&cluster, 1, &first, name, 7002).await;
    assert!(second.not_before() > first.not_before());
    let t = converge(
        &cluster,
        &all,
        name,
        &Answer::of(&second, name, 7002),
        "renewed through 1",
    )
    .await;
    println!("renewed through member 1: served by all members after {t:?}");

    // Renewed again through member 0: a newer notBefore beats the higher
    // issuing log, which only breaks ties.
    next_second_after(&cluster, &second).await;
    let third = node.renew_at(&cluster, 0, &second, name, 7003).await;
    assert!(third.not_before() > second.not_before());
    let t = converge(
        &cluster,
        &all,
        name,
        &Answer::of(&third, name, 7003),
        "renewed through 0",
    )
    .await;
    println!("renewed again through member 0: served by all members after {t:?}");

    // Revoking the superseded certificates leaves the name alone.
    revoke(&cluster, &first).await;
    revoke(&cluster, &second).await;
    assert_stays(
        &cluster,
        &all,
        name,
        &Answer::of(&third, name, 7003),
        10,
        "superseded certificates revoked",
    )
    .await;

    // Revoking the one published withdraws the name from every member.
    revoke(&cluster, &third).await;
    let t = converge(
        &cluster,
        &all,
        name,
        &Answer::absent(),
        "the served certificate revoked",
    )
    .await;
    println!("revoked: withdrawn from all members after {t:?}");
    node.endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_catches_up_from_its_stored_cursor() {
    let mut cluster = Cluster::start_with_dns(3, 2, Policy::default(), true).await;
    let all = [0, 1, 2];

    let kept = Enrolled::at(&cluster, 0, "db-1.mesh", 7001).await;
    let revoked = Enrolled::at(&cluster, 0, "db-2.mesh", 7002).await;
    let revoked_while_down = Enrolled::at(&cluster, 1, "db-4.mesh", 7004).await;
    for (n, name, port) in [
        (&kept, "db-1.mesh", 7001),
        (&revoked, "db-2.mesh", 7002),
        (&revoked_while_down, "db-4.mesh", 7004),
    ] {
        converge(
            &cluster,
            &all,
            name,
            &Answer::of(&n.cert, name, port),
            "before the restart",
        )
        .await;
    }
    revoke(&cluster, &revoked.cert).await;
    converge(
        &cluster,
        &all,
        "db-2.mesh",
        &Answer::absent(),
        "revoked before the restart",
    )
    .await;

    // Member 2 stops; it stored how far it replicated each log.
    let data_dir = stop(&mut cluster, 2).await;
    {
        let store = Store::open(&data_dir.join("trustchain.redb")).unwrap();
        assert!(store.zone_cursor(0).unwrap() > revoked.logged.1, "cursor of log 0");
        assert!(
            store.zone_cursor(1).unwrap() > revoked_while_down.logged.1,
            "cursor of log 1"
        );
    }

    // Meanwhile a name is enrolled through member 0 and another revoked.
    let fresh = Enrolled::at(&cluster, 0, "db-3.mesh", 7003).await;
    revoke(&cluster, &revoked_while_down.cert).await;
    let fresh_answer = Answer::of(&fresh.cert, "db-3.mesh", 7003);
    converge(
        &cluster,
        &[0, 1],
        "db-3.mesh",
        &fresh_answer,
        "enrolled while 2 is down",
    )
    .await;
    converge(
        &cluster,
        &[0, 1],
        "db-4.mesh",
        &Answer::absent(),
        "revoked while 2 is down",
    )
    .await;

    // Member 2 restarts from (a copy of) its data dir.
    let http = restart(&mut cluster, 2, data_dir).await;
    // What it had replicated is served from its store at once.
    let kept_answer = Answer::of(&kept.cert, "db-1.mesh", 7001);
    assert_answers(&cluster, 2, "db-1.mesh", &kept_answer, "restored").await;
    let t = converge(
        &cluster,
        &[2],
        "db-3.mesh",
        &fresh_answer,
        "caught up after the restart",
    )
    .await;
    println!("restarted member 2 serves the name enrolled while it was down after {t:?}");
    converge(&cluster, &[2], "db-4.mesh", &Answer::absent(), "revocation caught up").await;
    assert_answers(&cluster, 2, "db-2.mesh", &Answer::absent(), "revoked earlier").await;
    assert_answers(&cluster, 2, "db-1.mesh", &kept_answer, "after catching up").await;

    // It resumed from its cursor: had it asked log 0 from the start, it
    // would have been sent the revoked certificate again, and refused it.
    let metrics = http_get(http, "/metrics").await;
    assert_eq!(metric(&metrics, "trustchain_zone_feed_refused"), 0.0, "{metrics}");
    // Since the restart it took db-3.mesh and its node-id name, nothing else.
    assert_eq!(metric(&metrics, "trustchain_zone_names_replicated"), 2.0, "{metrics}");

    for n in [kept, revoked, revoked_while_down, fresh] {
        n.endpoint.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zone_feed_is_for_enrolled_callers_and_pages_by_log_index() {
    let cluster = Cluster::start(3, 2, Policy::default()).await;
    let a = Enrolled::at(&cluster, 0, "db-1.mesh", 7001).await;
    let b = Enrolled::at(&cluster, 0, "db-2.mesh", 7002).await;
    let size = member(&cluster, 0).log_size();
    assert!(a.logged.1 < b.logged.1 && b.logged.1 < size);

    // Not enrolled: the transport refuses before the handler runs.
    let stranger = KeyPair::generate(Algorithm::FnDsa1024);
    let client = CaClient::unenrolled(&stranger, cluster.bundle.clone()).unwrap();
    let conn = client.connect(0).await.unwrap();
    let everything = ZoneFeedRequest {
        from: 0,
        until: u64::MAX,
    };
    match conn
        .call(method::ZONE_FEED, Bytes::from(everything.encode()), Some(CALL))
        .await
    {
        Err(e @ RpcError::Unauthorized(_)) => assert_eq!(e.code(), 7),
        other => panic!("tc.zone.feed from an unenrolled caller: expected Unauthorized, got {other:?}"),
    }
    client.endpoint().shutdown().await;

    // Enrolled: entries by log index, capped at the log's size.
    let client = CaClient::with_endpoint(a.endpoint.clone(), cluster.bundle.clone());
    let conn = client.connect(0).await.unwrap();
    let feed = |from: u64, until: u64| {
        let conn = conn.clone();
        async move {
            let body = ZoneFeedRequest { from, until }.encode();
            conn.call(method::ZONE_FEED, Bytes::from(body), Some(CALL)).await
        }
    };
    let page = |r: Result<Bytes, RpcError>| ZoneFeedResponse::decode(&r.unwrap()).unwrap();

    let all = page(feed(0, u64::MAX).await);
    assert_eq!(all.next, size, "a short page ends at the log's size");
    let got: Vec<_> = all.entries.iter().map(|e| (e.index, e.certificate.clone())).collect();
    assert_eq!(
        got,
        vec![(a.logged.1, a.cert.der().to_vec()), (b.logged.1, b.cert.der().to_vec())]
    );
    for (e, port) in all.entries.iter().zip([7001, 7002]) {
        assert_eq!(e.address, Ipv6Addr::LOCALHOST);
        assert_eq!(e.services, service(port));
    }

    let only_b = page(feed(b.logged.1, size).await);
    assert_eq!(only_b.entries.len(), 1);
    assert_eq!(only_b.entries[0].index, b.logged.1);
    let only_a = page(feed(0, b.logged.1).await);
    assert_eq!(only_a.next, b.logged.1);
    assert_eq!(
        only_a.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![a.logged.1]
    );
    let past_the_end = page(feed(size + 5, size + 9).await);
    assert_eq!(
        past_the_end,
        ZoneFeedResponse {
            entries: Vec::new(),
            next: size + 5,
        }
    );

    // A backwards range does not decode.
    let mut backwards = ZoneFeedRequest { from: 0, until: 1 }.encode();
    backwards[..8].copy_from_slice(&2u64.to_be_bytes());
    match conn.call(method::ZONE_FEED, Bytes::from(backwards), Some(CALL)).await {
        Err(RpcError::Application { code, .. }) => assert_eq!(code, Refusal::Malformed(String::new()).code()),
        other => panic!("a backwards range: expected Malformed, got {other:?}"),
    }
    a.endpoint.shutdown().await;
    b.endpoint.shutdown().await;
}

/// Stops member `i` and returns a copy of its data dir.
///
/// `MemberNode::shutdown` leaves the member's store open and its STOQ
/// socket bound (the RPC handlers it registered on its endpoint hold the
/// member's state, which holds the endpoint), so the same process can
/// neither open that data dir again nor bind that address: the member
/// restarts from a copy, which is what a restart after a crash would find,
/// on another port (it dials the others; nothing here dials it).
async fn stop(cluster: &mut Cluster, i: usize) -> std::path::PathBuf {
    cluster.members[i].take().expect("member running").shutdown().await;
    let from = &cluster.member_dirs[i];
    let to = cluster.dir.path().join(format!("member-{i}-restarted"));
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    to
}

/// Starts member `i` again from `data_dir` (see [`stop`]) on
/// other (ephemeral) STOQ and DNS ports, with HTTP on; returns the HTTP
/// address.
async fn restart(cluster: &mut Cluster, i: usize, data_dir: std::path::PathBuf) -> SocketAddr {
    let config = MemberConfig {
        data_dir,
        listen: Some(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))),
        http_listen: Some(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))),
        ..cluster.config(i)
    };
    let member = MemberNode::start(config).await.unwrap();
    cluster.note_started(i, &member);
    let http = member.http_addr().unwrap();
    cluster.members[i] = Some(member);
    http
}

// --- regressions: each of these once failed --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_restarts_in_the_same_process() {
    let mut cluster = Cluster::start(3, 2, Policy::default()).await;
    cluster.members[2].take().unwrap().shutdown().await;
    match MemberNode::start(cluster.config(2)).await {
        Ok(m) => m.shutdown().await,
        Err(e) => panic!("restarting member 2 from its data dir: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_missed_a_checkpoint_still_replicates_its_entries() {
    let mut cluster = Cluster::start_with_dns(3, 2, Policy::default(), true).await;
    let data_dir = stop(&mut cluster, 2).await;
    // Two batches of log 0 while member 2 is down.
    let missed = Enrolled::at(&cluster, 0, "db-1.mesh", 7001).await;
    let seen = Enrolled::at(&cluster, 0, "db-2.mesh", 7002).await;
    assert!(missed.checkpoint.body.tree_size < seen.checkpoint.body.tree_size);
    // Member 2 got the second batch's checkpoint (gossip, stored as
    // gossip_in stores it) and not the first's (a lost message).
    {
        let store = Store::open(&data_dir.join("trustchain.redb")).unwrap();
        store.put_checkpoint(&seen.checkpoint).unwrap();
    }
    restart(&mut cluster, 2, data_dir).await;
    converge(
        &cluster,
        &[2],
        "db-2.mesh",
        &Answer::of(&seen.cert, "db-2.mesh", 7002),
        "the entry whose checkpoint member 2 holds",
    )
    .await;
    // tc.sync only sends checkpoints after the newest one held, so the
    // first batch's never arrives, and the pull skipped its entry.
    converge(
        &cluster,
        &[2],
        "db-1.mesh",
        &Answer::of(&missed.cert, "db-1.mesh", 7001),
        "the entry of the missed checkpoint",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_agree_on_a_name_whose_newest_certificate_was_revoked() {
    let mut cluster = Cluster::start_with_dns(3, 2, Policy::default(), true).await;
    let data_dir = stop(&mut cluster, 2).await;
    let name = "db-1.mesh";
    let node = Enrolled::at(&cluster, 0, name, 7001).await;
    next_second_after(&cluster, &node.cert).await;
    let renewed = node.renew_at(&cluster, 1, &node.cert, name, 7002).await;
    converge(&cluster, &[0, 1], name, &Answer::of(&renewed, name, 7002), "renewed").await;
    revoke(&cluster, &renewed).await;
    converge(&cluster, &[0, 1], name, &Answer::absent(), "revoked").await;
    // Markers in both logs, after the revocation, tell when member 2
    // caught up with both.
    let m0 = Enrolled::at(&cluster, 0, "marker-0.mesh", 7010).await;
    let m1 = Enrolled::at(&cluster, 1, "marker-1.mesh", 7011).await;

    restart(&mut cluster, 2, data_dir).await;
    converge(
        &cluster,
        &[2],
        "marker-0.mesh",
        &Answer::of(&m0.cert, "marker-0.mesh", 7010),
        "caught up",
    )
    .await;
    converge(
        &cluster,
        &[2],
        "marker-1.mesh",
        &Answer::of(&m1.cert, "marker-1.mesh", 7011),
        "caught up",
    )
    .await;
    // Members 0 and 1 withdrew the name; member 2 saw the first
    // certificate only after the second was revoked, and publishes it.
    assert_stays(&cluster, &[0, 1, 2], name, &Answer::absent(), 10, "after catching up").await;
}

// --- HTTP metrics -----------------------------------------------------------

/// The body of `GET path` on a member's HTTP listener.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // HTTP/1.0: the body is not chunked and ends with the connection.
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.lines().next().is_some_and(|l| l.contains(" 200 ")), "{resp}");
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of the sample `name` (a counter's `_total` included).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name || n == format!("{name}_total")).then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}
