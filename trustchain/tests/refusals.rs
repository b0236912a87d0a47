//! Every way an enrollment (or a member-only call) is refused: each with
//! its own stable code, and nothing stored: no certificate, no log entry,
//! and the token still unspent. One in-process 1-of-1 CA per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use std::net::Ipv6Addr;
use std::sync::Arc;

use stoq::crypto::KeyPair;
use stoq::endpoint::RpcError;
use stoq::Connection;
use trustchain::client::CaClient;
use trustchain::log::{Frontier, MerkleTree};
use trustchain::messages::{method, TokenCreate};
use trustchain::request::{EnrollmentRequest, RequestBody, MAX_REQUEST_LEN, NONCE_LEN};
use trustchain::token::{EnrollmentToken, TokenBody};
use trustchain::trust::TrustStore;
use trustchain::witness::{BatchItem, CosignRequest};
use trustchain::{Refusal, TrustBundle};

use common::*;

/// A running 1-of-1 CA, a token for `ok.mesh`, and a node (not enrolled)
/// connected to the member.
struct Fixture {
    ca: InProcessCa,
    bundle: Arc<TrustBundle>,
    admin: CaClient,
    token: EnrollmentToken,
    subject: KeyPair,
    client: CaClient,
    conn: Connection,
    /// certificates_issued and log_size before anything was refused.
    before: (u64, u64),
}

impl Fixture {
    async fn new() -> Fixture {
        init_tracing();
        let ca = InProcessCa::start(1, 1).await;
        let bundle = ca.bundle.clone();
        let admin = ca.admin();
        let token = token(&admin, 0, &["ok.mesh"]).await;
        let subject = key();
        let client = CaClient::unenrolled(&subject, bundle.clone()).unwrap();
        let conn = within("connecting", client.connect(0))
            .await
            .expect("connect to member 0");
        let before = issued_and_size(&admin, 0).await;
        Fixture {
            ca,
            bundle,
            admin,
            token,
            subject,
            client,
            conn,
            before,
        }
    }

    async fn nonce(&self) -> [u8; NONCE_LEN] {
        nonce_on(&self.conn).await
    }

    /// A request body for `names` from `::1` with a fresh nonce.
    async fn body(&self, names: &[&str]) -> RequestBody {
        RequestBody {
            bundle_id: self.bundle.id(),
            subject: self.subject.public_key().clone(),
            names: names.iter().map(|n| n.to_string()).collect(),
            address: Ipv6Addr::LOCALHOST,
            services: Vec::new(),
            lifetime_secs: 0,
            nonce: self.nonce().await,
        }
    }

    /// A correctly signed request for `body` with the fixture's token.
    fn request(&self, body: RequestBody) -> EnrollmentRequest {
        EnrollmentRequest::with_token(body, self.token.clone(), &self.subject).unwrap()
    }

    async fn send(&self, bytes: Vec<u8>) -> Result<Bytes, RpcError> {
        call(&self.conn, method::ENROLL, bytes).await
    }

    /// Sends `bytes` to tc.enroll; asserts the refusal's code and that its
    /// message contains `says`, and that nothing was stored.
    async fn refused(&self, case: &str, bytes: Vec<u8>, code: u16, says: &str) {
        let r = self.send(bytes).await;
        assert_refusal(case, &r, code, says);
        self.nothing_stored(case).await;
    }

    async fn nothing_stored(&self, case: &str) {
        assert_eq!(
            issued_and_size(&self.admin, 0).await,
            self.before,
            "{case}: nothing may be issued or logged"
        );
    }

    /// The token is still unspent: the subject enrolls with it.
    async fn token_still_works(self) {
        let issued = within(
            "the final enrollment",
            self.client
                .enroll_at(0, &self.subject, &self.token, &names(&["ok.mesh"])),
        )
        .await
        .expect("the token survived every refusal unspent");
        assert!(issued.certificate.dns_names().contains(&"ok.mesh".to_string()));
        let (issued_now, size_now) = issued_and_size(&self.admin, 0).await;
        assert_eq!((issued_now, size_now), (self.before.0 + 1, self.before.1 + 1));
        self.ca.shutdown().await;
    }
}

async fn nonce_on(conn: &Connection) -> [u8; NONCE_LEN] {
    let b = call(conn, method::NONCE, Vec::new()).await.expect("nonce");
    b.as_ref().try_into().expect("a nonce of NONCE_LEN bytes")
}

async fn call(conn: &Connection, method: &str, body: Vec<u8>) -> Result<Bytes, RpcError> {
    within(method, conn.call(method, Bytes::from(body), Some(WAIT))).await
}

fn assert_refusal(case: &str, r: &Result<Bytes, RpcError>, code: u16, says: &str) {
    match r {
        Err(RpcError::Application { code: got, message }) => {
            assert_eq!(
                *got, code,
                "{case}: refused with code {got} ({message}), expected {code}"
            );
            assert!(
                message.contains(says),
                "{case}: the refusal should say {says:?}: {message}"
            );
        }
        other => panic!("{case}: expected refusal {code}, got {other:?}"),
    }
}

fn now_ms() -> u64 {
    trustchain::time::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_of_possession_and_nonces() {
    let f = Fixture::new().await;

    // Signed by another key than the subject's.
    let body = f.body(&["ok.mesh"]).await;
    let used_nonce = body.nonce;
    let wrong = EnrollmentRequest::with_token(body, f.token.clone(), &key()).unwrap();
    f.refused(
        "proof of possession by another key",
        wrong.encode(),
        Refusal::ProofOfPossession.code(),
        "proof of possession",
    )
    .await;

    // The nonce of that request, replayed in a correct one.
    let mut body = f.body(&["ok.mesh"]).await;
    body.nonce = used_nonce;
    f.refused(
        "replayed nonce",
        f.request(body).encode(),
        Refusal::Nonce(String::new()).code(),
        "already used",
    )
    .await;

    // A nonce the member handed to another connection (another key).
    let other = CaClient::unenrolled(&key(), f.bundle.clone()).unwrap();
    let other_conn = within("connecting", other.connect(0)).await.unwrap();
    let mut body = f.body(&["ok.mesh"]).await;
    body.nonce = nonce_on(&other_conn).await;
    f.refused(
        "nonce of another connection",
        f.request(body).encode(),
        Refusal::Nonce(String::new()).code(),
        "not issued",
    )
    .await;

    // A nonce never handed out.
    let mut body = f.body(&["ok.mesh"]).await;
    body.nonce[30] ^= 1;
    f.refused(
        "forged nonce",
        f.request(body).encode(),
        Refusal::Nonce(String::new()).code(),
        "not issued",
    )
    .await;

    // A request for another CA.
    let mut body = f.body(&["ok.mesh"]).await;
    body.bundle_id[0] ^= 1;
    f.refused(
        "request for another CA",
        f.request(body).encode(),
        Refusal::Malformed(String::new()).code(),
        "another CA",
    )
    .await;

    f.token_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_addresses_and_lifetimes() {
    let f = Fixture::new().await;
    let not_allowed = Refusal::NameNotAllowed(String::new()).code();

    let body = f.body(&["other.mesh"]).await;
    f.refused(
        "name outside the token",
        f.request(body).encode(),
        not_allowed,
        "not allowed by the token",
    )
    .await;

    let body = f.body(&["ok.mesh", "evil.example.com"]).await;
    f.refused(
        "name outside the zone",
        f.request(body).encode(),
        not_allowed,
        "outside the zone",
    )
    .await;

    let body = f.body(&["ca-0.mesh"]).await;
    f.refused("a member's name", f.request(body).encode(), not_allowed, "reserved")
        .await;

    let body = f.body(&["*.mesh"]).await;
    f.refused(
        "a wildcard name",
        f.request(body).encode(),
        not_allowed,
        "not a DNS name",
    )
    .await;

    let mut body = f.body(&["ok.mesh"]).await;
    body.address = "::ffff:1.2.3.4".parse().unwrap();
    f.refused(
        "IPv4-mapped address",
        f.request(body).encode(),
        Refusal::Ipv4Address(String::new()).code(),
        "IPv4",
    )
    .await;

    let mut body = f.body(&["ok.mesh"]).await;
    body.address = "2001:db8::1".parse().unwrap();
    f.refused(
        "claimed address differs from the source",
        f.request(body).encode(),
        Refusal::AddressMismatch {
            claimed: String::new(),
            observed: String::new(),
        }
        .code(),
        "2001:db8::1",
    )
    .await;

    let mut body = f.body(&["ok.mesh"]).await;
    body.lifetime_secs = 30 * 24 * 3600;
    f.refused(
        "lifetime beyond the policy",
        f.request(body).encode(),
        Refusal::Lifetime {
            requested_secs: 0,
            max_secs: 0,
        }
        .code(),
        "exceeds the maximum",
    )
    .await;

    f.token_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests() {
    let f = Fixture::new().await;
    let malformed = Refusal::Malformed(String::new()).code();

    // A valid request padded beyond the limit.
    let mut bytes = f.request(f.body(&["ok.mesh"]).await).encode();
    assert!(bytes.len() < MAX_REQUEST_LEN, "a request is {} bytes", bytes.len());
    bytes.resize(MAX_REQUEST_LEN + 1, 0);
    f.refused("oversized request", bytes, malformed, "exceed the limit")
        .await;

    // Random bytes.
    let random: Vec<u8> = (0..2000).map(|_| rand::random::<u8>()).collect();
    f.refused("random bytes", random, malformed, "malformed").await;
    f.refused("empty request", Vec::new(), malformed, "malformed").await;

    // A valid request cut short, and one with trailing bytes.
    let bytes = f.request(f.body(&["ok.mesh"]).await).encode();
    f.refused(
        "truncated request",
        bytes[..bytes.len() / 2].to_vec(),
        malformed,
        "malformed",
    )
    .await;
    let mut bytes = f.request(f.body(&["ok.mesh"]).await).encode();
    bytes.push(0);
    f.refused("trailing byte", bytes, malformed, "malformed").await;

    // An unknown version.
    let mut bytes = f.request(f.body(&["ok.mesh"]).await).encode();
    bytes[0] = 9;
    f.refused("unknown version", bytes, malformed, "version").await;

    f.token_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_and_foreign_tokens() {
    let f = Fixture::new().await;
    let member_key = f.ca.member_key(0);
    let token_body = |expires_at_ms: u64| TokenBody {
        bundle_id: f.bundle.id(),
        id: rand::random(),
        issued_by: 0,
        expires_at_ms,
        max_lifetime_secs: 0,
        names: vec!["ok.mesh".into()],
    };

    // Signed by the member, expired a second ago.
    let expired = token_body(now_ms() - 1000).sign(&member_key).unwrap();
    expired
        .verify(&f.bundle, now_ms() - 2000)
        .expect("the token is otherwise good");
    let body = f.body(&["ok.mesh"]).await;
    let req = EnrollmentRequest::with_token(body, expired, &f.subject).unwrap();
    f.refused("expired token", req.encode(), Refusal::TokenExpired.code(), "expired")
        .await;

    // Signed by a key that is no member's, claiming member 0.
    let forged = token_body(now_ms() + 600_000).sign(&key()).unwrap();
    let body = f.body(&["ok.mesh"]).await;
    let req = EnrollmentRequest::with_token(body, forged, &f.subject).unwrap();
    f.refused(
        "token signed by a non-member",
        req.encode(),
        Refusal::TokenInvalid(String::new()).code(),
        "signature does not verify",
    )
    .await;

    // Claiming a member that does not exist.
    let mut b = token_body(now_ms() + 600_000);
    b.issued_by = 7;
    let body = f.body(&["ok.mesh"]).await;
    let req = EnrollmentRequest::with_token(body, b.sign(&member_key).unwrap(), &f.subject).unwrap();
    f.refused(
        "token of an unknown member",
        req.encode(),
        Refusal::TokenInvalid(String::new()).code(),
        "unknown member",
    )
    .await;

    // Signed by the member but for another CA.
    let mut b = token_body(now_ms() + 600_000);
    b.bundle_id[0] ^= 1;
    let body = f.body(&["ok.mesh"]).await;
    let req = EnrollmentRequest::with_token(body, b.sign(&member_key).unwrap(), &f.subject).unwrap();
    f.refused(
        "token of another CA",
        req.encode(),
        Refusal::TokenInvalid(String::new()).code(),
        "another CA",
    )
    .await;

    // The real token with its signature damaged.
    let mut damaged = f.token.clone();
    damaged.body.names = vec!["ok.mesh".into(), "more.mesh".into()];
    let body = f.body(&["ok.mesh"]).await;
    let req = EnrollmentRequest::with_token(body, damaged, &f.subject).unwrap();
    f.refused(
        "token with names added",
        req.encode(),
        Refusal::TokenInvalid(String::new()).code(),
        "signature does not verify",
    )
    .await;

    // Token creation by a key that is not an admin's.
    let stranger = CaClient::unenrolled(&key(), f.bundle.clone()).unwrap();
    let req = TokenCreate {
        names: vec!["ok.mesh".into()],
        ttl_secs: 600,
        max_lifetime_secs: 0,
    };
    let r = within("token creation", stranger.create_token(0, &req)).await;
    let e = r.expect_err("a non-admin key cannot create tokens");
    assert_eq!(
        e.refusal_code(),
        Some(Refusal::Unauthorized(String::new()).code()),
        "{e}"
    );
    assert!(e.to_string().contains("admin"), "{e}");
    // Not even a member's key (members are not admins).
    let as_member = CaClient::unenrolled(&member_key, f.bundle.clone()).unwrap();
    let e = within("token creation", as_member.create_token(0, &req))
        .await
        .expect_err("a member key cannot create tokens over the API");
    assert_eq!(
        e.refusal_code(),
        Some(Refusal::Unauthorized(String::new()).code()),
        "{e}"
    );
    // The admin cannot create a token outside the zone.
    let outside = TokenCreate {
        names: vec!["evil.example.com".into()],
        ..req.clone()
    };
    let e = within("token creation", f.admin.create_token(0, &outside))
        .await
        .expect_err("a token outside the zone");
    assert_eq!(
        e.refusal_code(),
        Some(Refusal::NameNotAllowed(String::new()).code()),
        "{e}"
    );
    f.nothing_stored("token creation").await;

    f.token_still_works().await;
}

/// A co-sign request that decodes: one item, against an empty log.
fn cosign_request(bundle: &TrustBundle, item: BatchItem) -> Vec<u8> {
    let tree = MerkleTree::new();
    let mut frontier = Frontier::new();
    frontier.push(stoq::crypto::merkle_leaf_hash(&item.log_entry()));
    let req = CosignRequest {
        body: trustchain::checkpoint::CheckpointBody {
            bundle_id: bundle.id(),
            log_id: 0,
            tree_size: 1,
            root: frontier.root(),
            timestamp_ms: now_ms(),
            batch_start: 0,
            batch_root: frontier.root(),
        },
        prev_root: tree.root(),
        prev_frontier: Frontier::new(),
        consistency_from: 0,
        consistency: Vec::new(),
        items: vec![item],
    };
    // Mode byte 2: sign.
    let mut out = vec![2];
    out.extend_from_slice(&req.encode());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_and_enrolled_methods_refuse_other_callers() {
    let f = Fixture::new().await;
    let item = BatchItem::Issue {
        request: f.request(f.body(&["ok.mesh"]).await),
        precert: vec![0x30, 0x00],
    };
    let cosign = cosign_request(&f.bundle, item);

    // Without an enrolled certificate the transport refuses tc.renew and
    // tc.cosign before any handler runs.
    let renewal = f.request(f.body(&["ok.mesh"]).await).encode();
    for (m, body) in [(method::RENEW, renewal), (method::COSIGN, cosign.clone())] {
        match call(&f.conn, m, body).await {
            Err(e @ RpcError::Unauthorized(_)) => assert_eq!(e.code(), 7),
            other => panic!("{m} from an unenrolled connection: expected Unauthorized, got {other:?}"),
        }
    }
    f.nothing_stored("unenrolled callers").await;

    // An enrolled node that is not a member may not ask for co-signatures.
    let node = key();
    let t = token(&f.admin, 0, &["node.mesh"]).await;
    let issued = enroll_at(&f.bundle, 0, &node, &t, &["node.mesh"])
        .await
        .expect("enrollment");
    let trust = TrustStore::new(f.bundle.clone());
    trust.add_checkpoint(issued.checkpoint.clone()).unwrap();
    let ep = trustchain_endpoint(&f.bundle, &trust, &issued.certificate, &node).unwrap();
    let enrolled = CaClient::with_endpoint(ep.clone(), f.bundle.clone());
    let conn = within("connecting", enrolled.connect(0)).await.unwrap();
    let after_enrollment = issued_and_size(&f.admin, 0).await;
    assert_refusal(
        "co-sign request from an enrolled non-member",
        &call(&conn, method::COSIGN, cosign).await,
        Refusal::Unauthorized(String::new()).code(),
        "only members",
    );
    assert_eq!(issued_and_size(&f.admin, 0).await, after_enrollment);
    ep.shutdown().await;

    f.ca.shutdown().await;
}
