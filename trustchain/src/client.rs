//! The client side of the TrustChain API over STOQ: enrollment, renewal,
//! revocation, tokens, sync of checkpoints and revocations, and the log.

use bytes::Bytes;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use stoq::crypto::KeyPair;
use stoq::endpoint::RpcError;
use stoq::pki::{issue, CertKind, Certificate, CertificateParams, Issuer};
use stoq::tls::{Identity, SecurityMode, TlsContext};
use stoq::{Connection, Endpoint, EndpointConfig};

use crate::bundle::{Member, TrustBundle};
use crate::error::Refusal;
use crate::log::Hash;
use crate::messages::{
    decode_entries, decode_hashes, encode_range, method, Issued, ProofRequest, SyncRequest, SyncResponse, TokenCreate,
};
use crate::request::{EnrollmentRequest, RequestBody, Service, NONCE_LEN};
use crate::revocation::{RevocationRequest, SignedRevocation};
use crate::token::EnrollmentToken;
use crate::trust::TrustStore;
use crate::{Error, Result};

/// How long one call waits.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// What to ask for in an enrollment or renewal.
#[derive(Debug, Clone, Default)]
pub struct Enrollment {
    /// DNS names inside the zone (the node-id name is always added).
    pub names: Vec<String>,
    /// The address to publish; `None` uses the local address of the
    /// connection to the member (what the member sees).
    pub address: Option<Ipv6Addr>,
    /// Services to publish as SRV records.
    pub services: Vec<Service>,
    /// Lifetime wanted (`None`: the CA's default).
    pub lifetime: Option<Duration>,
}

/// A TrustChain client over one STOQ endpoint.
#[derive(Debug, Clone)]
pub struct CaClient {
    endpoint: Endpoint,
    bundle: Arc<TrustBundle>,
}

/// A self-signed certificate for `key`: how a node that is not enrolled yet
/// (or an admin) authenticates its key to a member.
pub fn self_signed_identity(key: &KeyPair, name: &str) -> Result<Identity> {
    let subject = format!("CN={name}");
    let issuer = Issuer::self_signed(key.clone(), &subject)?;
    let params = CertificateParams::new(CertKind::Leaf, subject, Duration::from_secs(3600));
    let cert = issue(&params, key.public_key(), &issuer)?;
    Ok(Identity::new(vec![cert], key.clone())?)
}

impl CaClient {
    /// Uses an existing endpoint (an enrolled daemon's, or a member's).
    pub fn with_endpoint(endpoint: Endpoint, bundle: Arc<TrustBundle>) -> Self {
        CaClient { endpoint, bundle }
    }

    /// An endpoint on `[::]` with a self-signed certificate for `key`: for
    /// enrolling and for admin operations.
    pub fn unenrolled(key: &KeyPair, bundle: Arc<TrustBundle>) -> Result<Self> {
        let trust = TrustStore::new(bundle.clone());
        let tls = TlsContext::new(
            SecurityMode::PostQuantum,
            self_signed_identity(key, "trustchain-client")?,
            None,
            bundle.trust_anchors()?,
            vec![trust.check()],
        )?;
        let config = EndpointConfig {
            listen: SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            ..EndpointConfig::default()
        };
        Ok(CaClient {
            endpoint: Endpoint::bind(config, tls)?,
            bundle,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The bundle.
    pub fn bundle(&self) -> &Arc<TrustBundle> {
        &self.bundle
    }

    fn member(&self, index: u16) -> Result<&Member> {
        self.bundle
            .member(index)
            .ok_or_else(|| Error::Config(format!("no member {index} in the bundle")))
    }

    /// A connection to member `index`.
    pub async fn connect(&self, index: u16) -> Result<Connection> {
        let m = self.member(index)?;
        Ok(self.endpoint.connect(m.address, &m.dns_name(&self.bundle.zone)).await?)
    }

    async fn call(&self, index: u16, method: &str, body: Vec<u8>) -> Result<Bytes> {
        let conn = tokio::time::timeout(CALL_TIMEOUT, self.connect(index))
            .await
            .map_err(|_| Error::Refused(Refusal::Unavailable(format!("member {index} did not answer"))))??;
        let name = self.member(index)?.name.clone();
        let result = conn.call(method, Bytes::from(body), Some(CALL_TIMEOUT)).await;
        if let Err(RpcError::DeadlineExceeded | RpcError::Transport(_)) = &result {
            // The member may have restarted: never reuse this connection.
            conn.close("unresponsive");
        }
        result.map_err(|e| Error::from_rpc(name, e))
    }

    /// Members in the order to try them: a rotation so load spreads.
    fn order(&self) -> Vec<u16> {
        let n = self.bundle.members.len() as u16;
        let start = rand::random::<u16>() % n.max(1);
        (0..n).map(|i| (start + i) % n).collect()
    }

    /// Whether trying another member may help.
    fn worth_retrying(e: &Error) -> bool {
        match e.refusal_code() {
            Some(code) => {
                code == Refusal::Unavailable(String::new()).code() || code == Refusal::Quorum(String::new()).code()
            }
            None => true,
        }
    }

    /// Fetches a nonce from member `index` and signs a token enrollment
    /// for `key`, without sending it (benchmarks send many at once).
    pub async fn prepare_enrollment(
        &self,
        index: u16,
        key: &KeyPair,
        token: &EnrollmentToken,
        what: &Enrollment,
    ) -> Result<EnrollmentRequest> {
        self.prepare_at(index, key, what, Auth::Token(token)).await
    }

    /// Sends a prepared enrollment to member `index`.
    pub async fn submit_enrollment(&self, index: u16, request: &EnrollmentRequest) -> Result<Issued> {
        let resp = self.call(index, method::ENROLL, request.encode()).await?;
        Ok(Issued::decode_for(&resp, &request.body.subject)?)
    }

    async fn request_at(&self, index: u16, key: &KeyPair, what: &Enrollment, auth: Auth<'_>) -> Result<Issued> {
        let method = match auth {
            Auth::Token(_) => method::ENROLL,
            Auth::Renewal(..) => method::RENEW,
        };
        let request = self.prepare_at(index, key, what, auth).await?;
        let resp = self.call(index, method, request.encode()).await?;
        Ok(Issued::decode_for(&resp, key.public_key())?)
    }

    async fn prepare_at(
        &self,
        index: u16,
        key: &KeyPair,
        what: &Enrollment,
        auth: Auth<'_>,
    ) -> Result<EnrollmentRequest> {
        let conn = self.connect(index).await?;
        let nonce_bytes = self.call(index, method::NONCE, Vec::new()).await?;
        let nonce: [u8; NONCE_LEN] = nonce_bytes
            .as_ref()
            .try_into()
            .map_err(|_| Error::Config("member sent a malformed nonce".into()))?;
        let address = match what.address {
            Some(a) => a,
            None => match conn.quic().local_ip().or_else(|| source_address(conn.remote_address())) {
                Some(IpAddr::V6(a)) => a,
                _ => return Err(Error::Config("cannot tell the local IPv6 address; pass one".into())),
            },
        };
        let body = RequestBody {
            bundle_id: self.bundle.id(),
            subject: key.public_key().clone(),
            names: what.names.clone(),
            address,
            services: what.services.clone(),
            lifetime_secs: what
                .lifetime
                .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
                .unwrap_or(0),
            nonce,
        };
        Ok(match auth {
            Auth::Token(t) => EnrollmentRequest::with_token(body, t.clone(), key)?,
            Auth::Renewal(cert, current) => EnrollmentRequest::renewal(body, cert.clone(), current, key)?,
        })
    }

    async fn request(&self, key: &KeyPair, what: &Enrollment, auth: Auth<'_>) -> Result<Issued> {
        let mut last = None;
        for index in self.order() {
            match self.request_at(index, key, what, auth).await {
                Ok(i) => return Ok(i),
                Err(e) if Self::worth_retrying(&e) => {
                    tracing::debug!(member = index, error = %e, "trying another member");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("the bundle has no members".into())))
    }

    /// Enrolls `key` with a token.
    pub async fn enroll(&self, key: &KeyPair, token: &EnrollmentToken, what: &Enrollment) -> Result<Issued> {
        self.request(key, what, Auth::Token(token)).await
    }

    /// Enrolls at one member (tests and benchmarks).
    pub async fn enroll_at(
        &self,
        index: u16,
        key: &KeyPair,
        token: &EnrollmentToken,
        what: &Enrollment,
    ) -> Result<Issued> {
        self.request_at(index, key, what, Auth::Token(token)).await
    }

    /// Renews `current` (held with `current_key`) for `new_key`; the names
    /// must be among the current certificate's.
    pub async fn renew(
        &self,
        current: &Certificate,
        current_key: &KeyPair,
        new_key: &KeyPair,
        what: &Enrollment,
    ) -> Result<Issued> {
        self.request(new_key, what, Auth::Renewal(current, current_key)).await
    }

    /// Sends a revocation request to the first member that takes it.
    pub async fn revoke(&self, request: &RevocationRequest) -> Result<SignedRevocation> {
        let mut last = None;
        for index in self.order() {
            match self.call(index, method::REVOKE, request.encode()).await {
                Ok(b) => return Ok(SignedRevocation::decode(&b)?),
                Err(e) if Self::worth_retrying(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("the bundle has no members".into())))
    }

    /// Asks member `index` for a token (this endpoint's key must be an
    /// admin key).
    pub async fn create_token(&self, index: u16, req: &TokenCreate) -> Result<EnrollmentToken> {
        let b = self.call(index, method::TOKEN_CREATE, req.encode()).await?;
        let text = std::str::from_utf8(&b).map_err(|_| Error::Config("token is not text".into()))?;
        Ok(EnrollmentToken::from_text(text)?)
    }

    /// Fetches what `trust` lacks from member `index` and applies it.
    pub async fn sync_from(&self, index: u16, trust: &TrustStore) -> Result<SyncResponse> {
        let req = SyncRequest {
            have: trust.latest_sizes(),
        };
        let b = self.call(index, method::SYNC, req.encode()).await?;
        let resp = SyncResponse::decode(&b)?;
        let mut applied = SyncResponse::default();
        for cp in resp.checkpoints {
            match trust.add_checkpoint(cp.clone()) {
                Ok(true) => applied.checkpoints.push(cp),
                Ok(false) => {}
                Err(e) => tracing::warn!(member = index, error = %e, "checkpoint refused"),
            }
        }
        for r in resp.revocations {
            if let Ok(true) = trust.add_revocation(&r) {
                applied.revocations.push(r);
            }
        }
        Ok(applied)
    }

    /// Syncs from every reachable member; returns the number of new
    /// checkpoints and revocations.
    pub async fn sync(&self, trust: &TrustStore) -> Result<(usize, usize)> {
        let (mut cps, mut revs, mut ok) = (0, 0, false);
        let mut last = None;
        let results =
            futures_util::future::join_all(self.bundle.members.iter().map(|m| self.sync_from(m.index, trust))).await;
        for r in results {
            match r {
                Ok(r) => {
                    ok = true;
                    cps += r.checkpoints.len();
                    revs += r.revocations.len();
                }
                Err(e) => last = Some(e),
            }
        }
        match (ok, last) {
            (false, Some(e)) => Err(e),
            _ => Ok((cps, revs)),
        }
    }

    /// A member's status (JSON).
    pub async fn status(&self, index: u16) -> Result<String> {
        let b = self.call(index, method::STATUS, Vec::new()).await?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// Entries `start..end` of member `index`'s log.
    pub async fn entries(&self, index: u16, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        let b = self.call(index, method::ENTRIES, encode_range(start, end)).await?;
        Ok(decode_entries(&b)?)
    }

    /// A proof from member `index`'s log.
    pub async fn proof(&self, index: u16, req: ProofRequest) -> Result<Vec<Hash>> {
        let b = self.call(index, method::PROOF, req.encode()).await?;
        Ok(decode_hashes(&b)?)
    }
}

/// The source address the kernel picks towards `dest` (a connected UDP
/// socket sends nothing, it only routes).
fn source_address(dest: SocketAddr) -> Option<IpAddr> {
    let sock = std::net::UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))).ok()?;
    sock.connect(dest).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Token(&'a EnrollmentToken),
    Renewal(&'a Certificate, &'a KeyPair),
}
