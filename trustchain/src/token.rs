//! Single-use enrollment tokens.
//!
//! An admin asks a member to create a token; the member signs what the
//! token allows (name patterns, expiry, longest certificate lifetime). Any
//! member can check the signature, and every member that co-signs an
//! issuance records the token as used: with k > n/2 any two quorums share a
//! member, so a token cannot be spent twice, even at different members.

use base64::Engine;
use stoq::crypto::{KeyPair, Signature};

use crate::bundle::TrustBundle;
use crate::error::{Refusal, WireError};
use crate::wire::{Reader, Writer};
use crate::Result;

/// Prefix of the text form.
pub const TOKEN_PREFIX: &str = "tct1.";
/// Most name patterns in a token.
pub const MAX_TOKEN_NAMES: usize = 16;

/// What a token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBody {
    /// The CA.
    pub bundle_id: [u8; 32],
    /// Random id: what "used" is recorded against.
    pub id: [u8; 16],
    /// The member that signed it.
    pub issued_by: u16,
    /// Unusable after this (ms since the Unix epoch).
    pub expires_at_ms: u64,
    /// Longest certificate lifetime it grants, seconds (0: the policy's).
    pub max_lifetime_secs: u32,
    /// Name patterns: exact names (`db-1.mesh`) or one leading wildcard
    /// label (`*.validators.mesh`, matching exactly one label).
    pub names: Vec<String>,
}

/// A signed token.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentToken {
    /// What it allows.
    pub body: TokenBody,
    /// The issuing member's signature.
    pub signature: Signature,
}

impl TokenBody {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_domain(b"trustchain/token/v1");
        self.write(&mut w);
        w.finish()
    }

    fn write(&self, w: &mut Writer) {
        w.fixed(&self.bundle_id)
            .fixed(&self.id)
            .u16(self.issued_by)
            .u64(self.expires_at_ms)
            .u32(self.max_lifetime_secs);
        w.u8(self.names.len() as u8);
        for n in &self.names {
            w.str8(n);
        }
    }

    /// Signs the body as member `index`.
    pub fn sign(self, key: &KeyPair) -> Result<EnrollmentToken> {
        let signature = key.sign(&self.signed_bytes())?;
        Ok(EnrollmentToken { body: self, signature })
    }
}

impl EnrollmentToken {
    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1);
        self.body.write(&mut w);
        w.sig(&self.signature);
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "enrollment token");
        if r.u8()? != 1 {
            return Err(WireError {
                what: "enrollment token",
                reason: "unknown version".into(),
            });
        }
        let bundle_id = r.array()?;
        let id = r.array()?;
        let issued_by = r.u16()?;
        let expires_at_ms = r.u64()?;
        let max_lifetime_secs = r.u32()?;
        let n = r.count(MAX_TOKEN_NAMES)?;
        let mut names = Vec::with_capacity(n);
        for _ in 0..n {
            names.push(r.str8(253)?);
        }
        let signature = r.sig()?;
        r.finish()?;
        Ok(EnrollmentToken {
            body: TokenBody {
                bundle_id,
                id,
                issued_by,
                expires_at_ms,
                max_lifetime_secs,
                names,
            },
            signature,
        })
    }

    /// The text form handed to an operator (`tct1.<base64url>`).
    pub fn to_text(&self) -> String {
        format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.encode())
        )
    }

    /// Parses the text form.
    pub fn from_text(text: &str) -> Result<Self, Refusal> {
        let b64 = text
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| Refusal::TokenInvalid(format!("a token starts with {TOKEN_PREFIX}")))?;
        if b64.len() > 8192 {
            return Err(Refusal::TokenInvalid("token too long".into()));
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|e| Refusal::TokenInvalid(format!("not base64url: {e}")))?;
        EnrollmentToken::decode(&bytes).map_err(|e| Refusal::TokenInvalid(e.to_string()))
    }

    /// Checks the signature, the CA and the expiry.
    pub fn verify(&self, bundle: &TrustBundle, now_ms: u64) -> Result<(), Refusal> {
        if self.body.bundle_id != bundle.id() {
            return Err(Refusal::TokenInvalid("issued by another CA".into()));
        }
        let member = bundle
            .member(self.body.issued_by)
            .ok_or_else(|| Refusal::TokenInvalid(format!("unknown member {}", self.body.issued_by)))?;
        member
            .key()
            .verify(&self.body.signed_bytes(), &self.signature)
            .map_err(|_| Refusal::TokenInvalid("signature does not verify".into()))?;
        if now_ms >= self.body.expires_at_ms {
            return Err(Refusal::TokenExpired);
        }
        Ok(())
    }

    /// Whether the token allows `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.body.names.iter().any(|p| name_matches(p, name))
    }
}

/// Matches a name against an exact pattern or a one-label wildcard.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_label() {
        assert!(name_matches("*.v.mesh", "a.v.mesh"));
        assert!(!name_matches("*.v.mesh", "a.b.v.mesh"));
        assert!(!name_matches("*.v.mesh", "v.mesh"));
        assert!(name_matches("Db.mesh", "db.MESH"));
        assert!(!name_matches("db.mesh", "db2.mesh"));
    }
}
