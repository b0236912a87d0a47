//! The member's RPC methods.

use bytes::Bytes;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use stoq::endpoint::{RpcError, RpcRequest};
use stoq::pki::tbs_certificate;

use super::pipeline::{Job, Outcome, MODE_CHECK, MODE_SIGN};
use super::Shared;
use crate::error::Refusal;
use crate::messages::{
    decode_range, encode_entries, encode_hashes, method, CosignReply, ProofRequest, SyncRequest, SyncResponse,
    TokenCreate, MAX_PAGE,
};
use crate::policy::check_address;
use crate::request::{Authorization, EnrollmentRequest};
use crate::revocation::RevocationRequest;
use crate::store::TokenState;
use crate::time::{now_ms, to_ms};
use crate::token::TokenBody;
use crate::witness::{check_extension, BatchItem, CosignRequest, Head, WitnessVerdict};

type Handled = Result<Vec<u8>, Refusal>;

/// Registers `f` as `method`; `public` methods also serve callers that are
/// not enrolled.
fn serve<F, Fut>(shared: &Arc<Shared>, name: &str, public: bool, f: F)
where
    F: Fn(Arc<Shared>, RpcRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Handled> + Send + 'static,
{
    let s = shared.clone();
    let f = Arc::new(f);
    let handler = move |req: RpcRequest| {
        let (s, f) = (s.clone(), f.clone());
        async move {
            match f(s.clone(), req).await {
                Ok(body) => Ok(Bytes::from(body)),
                Err(r) => {
                    s.metrics.refused.inc();
                    Err(RpcError::from(r))
                }
            }
        }
    };
    if public {
        shared.endpoint.register_public(name, handler);
    } else {
        shared.endpoint.register(name, handler);
    }
}

pub(crate) fn register(shared: &Arc<Shared>, jobs: mpsc::Sender<Job>) {
    serve(shared, method::NONCE, true, |s, req| async move {
        Ok(s.nonces.issue(&req.peer.node_id(), now_ms()).to_vec())
    });
    let j = jobs.clone();
    serve(shared, method::ENROLL, true, move |s, req| {
        let j = j.clone();
        async move { enroll(&s, &j, req, false).await }
    });
    let j = jobs.clone();
    serve(shared, method::RENEW, false, move |s, req| {
        let j = j.clone();
        async move { enroll(&s, &j, req, true).await }
    });
    serve(shared, method::REVOKE, true, move |s, req| {
        let j = jobs.clone();
        async move { revoke(&s, &j, req).await }
    });
    serve(shared, method::TOKEN_CREATE, true, |s, req| async move {
        create_token(&s, req)
    });
    serve(shared, method::SYNC, true, |s, req| async move { sync(&s, &req.body) });
    serve(shared, method::ENTRIES, true, |s, req| async move {
        let (start, end) = decode_range(&req.body)?;
        if end < start || end - start > MAX_PAGE as u64 {
            return Err(Refusal::Malformed(format!("ask for at most {MAX_PAGE} entries")));
        }
        let entries = s
            .store
            .entries(start, end)
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        Ok(encode_entries(&entries))
    });
    serve(shared, method::PROOF, true, |s, req| async move {
        let tree = s.tree();
        let proof = match ProofRequest::decode(&req.body)? {
            ProofRequest::Inclusion { index, size } => tree.inclusion_proof(index, size),
            ProofRequest::Consistency { old, new } => tree.consistency_proof(old, new),
        }
        .map_err(|e| Refusal::NotFound(e.to_string()))?;
        Ok(encode_hashes(&proof))
    });
    serve(shared, method::STATUS, true, |s, _req| async move {
        Ok(status_json(&s).into_bytes())
    });
    serve(shared, method::COSIGN, false, |s, req| async move { cosign(&s, req) });
    serve(shared, method::ZONE_FEED, false, |s, req| async move {
        super::replicate::serve_feed(&s, &req.body)
    });
}

fn observed_ip(req: &RpcRequest) -> Option<Ipv6Addr> {
    match req.remote.ip() {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    }
}

async fn submit(jobs: &mpsc::Sender<Job>, item: BatchItem) -> Result<Outcome, Refusal> {
    let (tx, rx) = oneshot::channel();
    jobs.send(Job::new(item, tx))
        .await
        .map_err(|_| Refusal::Unavailable("the member is shutting down".into()))?;
    rx.await
        .map_err(|_| Refusal::Unavailable("the issuance pipeline stopped".into()))?
}

async fn enroll(s: &Arc<Shared>, jobs: &mpsc::Sender<Job>, req: RpcRequest, renewal: bool) -> Handled {
    let request = EnrollmentRequest::decode(&req.body)?;
    match (&request.auth, renewal) {
        (Authorization::Token(_), false) | (Authorization::Renewal { .. }, true) => {}
        (_, false) => {
            return Err(Refusal::Malformed(
                "tc.enroll takes a token; use tc.renew to renew".into(),
            ))
        }
        (_, true) => return Err(Refusal::Malformed("tc.renew takes the current certificate".into())),
    }
    let now = std::time::SystemTime::now();
    s.nonces.redeem(&request.body.nonce, &req.peer.node_id(), to_ms(now))?;
    check_address(request.body.address)?;
    let approved = s
        .config
        .policy
        .approve(&s.bundle, &s.trust, &request, observed_ip(&req), now)?;
    if let Some(id) = approved.token_id {
        if matches!(s.store.token(&id), Ok(Some(TokenState::Used { .. }))) {
            return Err(Refusal::TokenUsed);
        }
    }
    let mut serial = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let params = s.config.policy.params(&approved, serial, now);
    let precert = tbs_certificate(&params, &request.body.subject, &s.issuer)
        .map_err(|e| Refusal::Malformed(format!("building the certificate: {e}")))?;
    match submit(jobs, BatchItem::Issue { request, precert }).await? {
        Outcome::Issued(issued) => Ok(issued.encode()),
        Outcome::Revoked(_) => Err(Refusal::Unavailable("unexpected pipeline outcome".into())),
    }
}

async fn revoke(s: &Arc<Shared>, jobs: &mpsc::Sender<Job>, req: RpcRequest) -> Handled {
    let request = RevocationRequest::decode(&req.body)?;
    request.authorize(&s.bundle)?;
    if s.trust
        .is_revoked(request.statement.issuer_log, &request.statement.serial)
    {
        return Err(Refusal::Revoked);
    }
    match submit(jobs, BatchItem::Revoke(request)).await? {
        Outcome::Revoked(r) => Ok(r.encode()),
        Outcome::Issued(_) => Err(Refusal::Unavailable("unexpected pipeline outcome".into())),
    }
}

fn create_token(s: &Arc<Shared>, req: RpcRequest) -> Handled {
    if !s.bundle.is_admin(req.peer.public_key()) {
        return Err(Refusal::Unauthorized(
            "creating tokens needs an admin key of the trust bundle".into(),
        ));
    }
    let t = TokenCreate::decode(&req.body)?;
    if t.names.is_empty() {
        return Err(Refusal::Malformed(
            "a token must allow at least one name pattern".into(),
        ));
    }
    let zone = s.bundle.zone_suffix();
    for n in &t.names {
        let plain = n.strip_prefix("*.").unwrap_or(n);
        if !plain.to_ascii_lowercase().ends_with(&format!(".{zone}")) {
            return Err(Refusal::NameNotAllowed(format!(
                "{n} is outside the zone {}",
                s.bundle.zone
            )));
        }
    }
    let mut id = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
    let token = TokenBody {
        bundle_id: s.bundle.id(),
        id,
        issued_by: s.index,
        expires_at_ms: now_ms().saturating_add(u64::from(t.ttl_secs) * 1000),
        max_lifetime_secs: t.max_lifetime_secs,
        names: t.names,
    }
    .sign(&s.key)
    .map_err(|e| Refusal::Unavailable(e.to_string()))?;
    s.store
        .put_token(&id)
        .map_err(|e| Refusal::Unavailable(e.to_string()))?;
    Ok(token.to_text().into_bytes())
}

fn sync(s: &Arc<Shared>, body: &[u8]) -> Handled {
    let have = SyncRequest::decode(body)?;
    let mut resp = SyncResponse::default();
    for m in &s.bundle.members {
        let after = have
            .have
            .iter()
            .find(|(l, _)| *l == m.index)
            .map(|(_, size)| *size)
            .unwrap_or(0);
        resp.checkpoints.extend(
            s.store
                .checkpoints_after(m.index, after, MAX_PAGE)
                .map_err(|e| Refusal::Unavailable(e.to_string()))?,
        );
    }
    resp.revocations = s.store.revocations().map_err(|e| Refusal::Unavailable(e.to_string()))?;
    Ok(resp.encode())
}

pub(super) fn status_json(s: &Shared) -> String {
    let (entries, certs, tokens, revocations) = s.store.counts().unwrap_or_default();
    let (checkpoints, _, forks) = s.trust.counts();
    serde_json::json!({
        "member": s.index,
        "name": s.bundle.member(s.index).map(|m| m.name.clone()),
        "bundle_id": stoq::crypto::hex(&s.bundle.id()),
        "threshold": s.bundle.threshold,
        "members": s.bundle.members.len(),
        "log_size": entries,
        "log_root": stoq::crypto::hex(&s.tree().root()),
        "certificates_issued": certs,
        "tokens": tokens,
        "revocations": revocations,
        "checkpoints_known": checkpoints,
        "forks_detected": forks,
        "zone_names": s.zone.len(),
    })
    .to_string()
}

/// The witness side of co-signing.
fn cosign(s: &Arc<Shared>, req: RpcRequest) -> Handled {
    let (&mode, rest) = req
        .body
        .split_first()
        .ok_or_else(|| Refusal::Malformed("empty co-sign request".into()))?;
    if mode != MODE_CHECK && mode != MODE_SIGN {
        return Err(Refusal::Malformed(format!("unknown co-sign mode {mode}")));
    }
    let cr = CosignRequest::decode(rest)?;
    let body = &cr.body;
    if body.bundle_id != s.bundle.id() {
        return Err(Refusal::Malformed("co-sign request for another CA".into()));
    }
    let caller = s
        .bundle
        .member_by_key(req.peer.public_key())
        .ok_or_else(|| Refusal::Unauthorized("only members ask for co-signatures".into()))?;
    if caller.index != body.log_id || caller.index == s.index {
        return Err(Refusal::Unauthorized(
            "a member may only ask for its own log's heads".into(),
        ));
    }
    let now = std::time::SystemTime::now();
    let skew_ms = s.config.policy.clock_skew_secs * 1000;
    if body.timestamp_ms.abs_diff(to_ms(now)) > skew_ms {
        return Err(Refusal::Witness("the head's timestamp is too far from my clock".into()));
    }
    let last = s
        .store
        .witness_head(body.log_id)
        .map_err(|e| Refusal::Unavailable(e.to_string()))?;
    if let Some(l) = &last {
        let repeat = body.tree_size == l.size && body.root == l.root;
        if !repeat && body.batch_start >= l.size && cr.consistency_from != l.size {
            return Ok(CosignReply::StaleView(l.size).encode());
        }
    }
    let verdict = check_extension(last.as_ref(), &cr)?;
    let issuer = caller.clone();
    let mut refused = Vec::new();
    let mut tokens = Vec::new();
    for (i, item) in cr.items.iter().enumerate() {
        let outcome = match item {
            BatchItem::Issue { request, precert } => s
                .config
                .policy
                .approve(&s.bundle, &s.trust, request, None, now)
                .and_then(|approved| {
                    if let Some(id) = approved.token_id {
                        match s.store.token(&id) {
                            Ok(Some(TokenState::Used { log_id, tree_size }))
                                if (log_id, tree_size) != (body.log_id, body.tree_size) =>
                            {
                                return Err(Refusal::TokenUsed)
                            }
                            Err(e) => return Err(Refusal::Unavailable(e.to_string())),
                            _ => tokens.push(id),
                        }
                    }
                    s.config
                        .policy
                        .check_precertificate(precert, request, &approved, &issuer, now)
                }),
            BatchItem::Revoke(r) => r.authorize(&s.bundle),
        };
        if let Err(e) = outcome {
            refused.push((i as u16, e.code(), e.to_string()));
        }
    }
    if mode == MODE_CHECK {
        return Ok(CosignReply::Verdicts(refused).encode());
    }
    if !refused.is_empty() {
        s.metrics.cosign_refused.inc();
        return Err(Refusal::Witness(format!(
            "{} items refused: {}",
            refused.len(),
            refused[0].1
        )));
    }
    let head = match verdict {
        WitnessVerdict::Extends(h) | WitnessVerdict::Repeat(h) => Head {
            timestamp_ms: body.timestamp_ms.max(h.timestamp_ms),
            ..h
        },
    };
    match s.store.record_cosign(body.log_id, &head, &tokens, None) {
        Ok(None) => {}
        Ok(Some(_)) => return Err(Refusal::TokenUsed),
        Err(e) => return Err(Refusal::Unavailable(e.to_string())),
    }
    let sig = body
        .sign(s.index, &s.key)
        .map_err(|e| Refusal::Unavailable(e.to_string()))?;
    s.metrics.cosigned.inc();
    Ok(CosignReply::Signed(sig.signature).encode())
}
