//! The crate's errors: [`Error`] for everything, [`Refusal`] for the reasons
//! a request is turned down (each with a stable code on the wire).

use stoq::endpoint::RpcError;

/// A message or statement that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {reason}")]
pub struct WireError {
    /// What was being decoded.
    pub what: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Why TrustChain refused a request. Each variant has a stable code that
/// crosses STOQ RPC as an application error, so a client can tell them
/// apart after the round trip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request does not decode or breaks a size limit (code 100).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The enrollment token's signature, bundle or encoding is wrong
    /// (code 101).
    #[error("invalid enrollment token: {0}")]
    TokenInvalid(String),
    /// The enrollment token has expired; ask the admin for a new one
    /// (code 102).
    #[error("enrollment token expired; ask an admin for a new one (trustchain token create)")]
    TokenExpired,
    /// The enrollment token was used already (code 103).
    #[error("enrollment token already used; tokens are single-use, ask an admin for a new one")]
    TokenUsed,
    /// A requested name is not allowed by the token or by policy (code 104).
    #[error("name not allowed: {0}")]
    NameNotAllowed(String),
    /// The proof of possession does not verify (code 105).
    #[error(
        "proof of possession does not verify: the request must be signed by the subject key over the server nonce"
    )]
    ProofOfPossession,
    /// The server nonce is unknown, expired or was used (code 106).
    #[error("bad nonce: {0}; fetch a fresh one")]
    Nonce(String),
    /// The address is IPv4 or IPv4-mapped (code 107).
    #[error("address {0} is IPv4: the stack is IPv6-only")]
    Ipv4Address(String),
    /// The claimed address is not the one the request came from (code 108).
    #[error("claimed address {claimed} differs from the address the request came from ({observed})")]
    AddressMismatch {
        /// What the request says.
        claimed: String,
        /// Where it came from.
        observed: String,
    },
    /// The certificate presented for renewal is not acceptable (code 109).
    #[error("renewal refused: {0}")]
    Renewal(String),
    /// The requested lifetime exceeds the policy (code 110).
    #[error("requested lifetime {requested_secs} s exceeds the maximum of {max_secs} s")]
    Lifetime {
        /// Requested seconds.
        requested_secs: u64,
        /// Allowed seconds.
        max_secs: u64,
    },
    /// The caller may not do this (code 111).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Fewer than k members agreed (code 112).
    #[error("quorum not reached: {0}")]
    Quorum(String),
    /// A witness refused a tree head (code 113).
    #[error("witness refused the tree head: {0}")]
    Witness(String),
    /// What was asked for does not exist (code 114).
    #[error("not found: {0}")]
    NotFound(String),
    /// The certificate is revoked (code 115).
    #[error("certificate is revoked")]
    Revoked,
    /// The member cannot serve now; retry (code 116).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Another member refused the request while checking it; carries that
    /// member's refusal code.
    #[error("{member} refused the request: {message}")]
    ByMember {
        /// The member's name.
        member: String,
        /// Its refusal code.
        code: u16,
        /// Its message.
        message: String,
    },
}

impl Refusal {
    /// The stable wire code.
    pub fn code(&self) -> u16 {
        match self {
            Refusal::Malformed(_) => 100,
            Refusal::TokenInvalid(_) => 101,
            Refusal::TokenExpired => 102,
            Refusal::TokenUsed => 103,
            Refusal::NameNotAllowed(_) => 104,
            Refusal::ProofOfPossession => 105,
            Refusal::Nonce(_) => 106,
            Refusal::Ipv4Address(_) => 107,
            Refusal::AddressMismatch { .. } => 108,
            Refusal::Renewal(_) => 109,
            Refusal::Lifetime { .. } => 110,
            Refusal::Unauthorized(_) => 111,
            Refusal::Quorum(_) => 112,
            Refusal::Witness(_) => 113,
            Refusal::NotFound(_) => 114,
            Refusal::Revoked => 115,
            Refusal::Unavailable(_) => 116,
            Refusal::ByMember { code, .. } => *code,
        }
    }

    /// The RPC error carrying this refusal.
    pub fn to_rpc(&self) -> RpcError {
        RpcError::Application {
            code: self.code(),
            message: self.to_string(),
        }
    }
}

impl From<WireError> for Refusal {
    fn from(e: WireError) -> Self {
        Refusal::Malformed(e.to_string())
    }
}

impl From<Refusal> for RpcError {
    fn from(r: Refusal) -> Self {
        r.to_rpc()
    }
}

/// Everything that can go wrong in TrustChain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request was refused (by us or by a member we asked).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A message or statement does not decode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A transparency-log proof or tree operation failed.
    #[error("transparency log: {0}")]
    Log(#[from] crate::log::ProofError),
    /// A certificate is malformed or does not verify.
    #[error("certificate: {0}")]
    Certificate(#[from] stoq::pki::CertificateError),
    /// A key or signature operation failed.
    #[error("crypto: {0}")]
    Crypto(#[from] stoq::crypto::CryptoError),
    /// The trust bundle is inconsistent or does not match.
    #[error("trust bundle: {0}")]
    Bundle(String),
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The database failed.
    #[error("database: {0}")]
    Store(String),
    /// The DNS server or resolver failed.
    #[error("dns: {0}")]
    Dns(#[from] crate::dns::DnsError),
    /// A call to a member failed, or the member refused (see
    /// [`Error::refusal_code`]).
    #[error("{peer}: {source}")]
    Rpc {
        /// Who we called.
        peer: String,
        /// What failed.
        source: RpcError,
    },
    /// The transport failed.
    #[error(transparent)]
    Stoq(#[from] stoq::Error),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an RPC error from a member; TrustChain refusals keep their
    /// code (see [`Error::refusal_code`]).
    pub fn from_rpc(peer: impl Into<String>, e: RpcError) -> Error {
        Error::Rpc {
            peer: peer.into(),
            source: e,
        }
    }

    /// The [`Refusal::code`] behind this error, local or remote.
    pub fn refusal_code(&self) -> Option<u16> {
        match self {
            Error::Refused(r) => Some(r.code()),
            Error::Rpc {
                source: RpcError::Application { code, .. },
                ..
            } => Some(*code),
            _ => None,
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
