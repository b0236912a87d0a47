//! The STOQ RPC methods a member serves and their message encodings.

use stoq::crypto::{PublicKey, Signature};
use stoq::pki::{Certificate, CertificateError};

use crate::checkpoint::Checkpoint;
use crate::error::WireError;
use crate::log::{Hash, MAX_PROOF_LEN};
use crate::revocation::SignedRevocation;
use crate::wire::{Reader, Writer};

/// RPC method names.
pub mod method {
    /// A fresh server nonce for a proof of possession (public).
    pub const NONCE: &str = "tc.nonce";
    /// Enroll with a token (public: the caller has no certificate yet).
    pub const ENROLL: &str = "tc.enroll";
    /// Renew with the current certificate (enrolled callers).
    pub const RENEW: &str = "tc.renew";
    /// Revoke a certificate (public: the request carries its own
    /// authorization).
    pub const REVOKE: &str = "tc.revoke";
    /// Create an enrollment token (admin key over TLS).
    pub const TOKEN_CREATE: &str = "tc.token.create";
    /// Checkpoints and revocations newer than what the caller has
    /// (public: the log is public).
    pub const SYNC: &str = "tc.sync";
    /// Log entries by index (public).
    pub const ENTRIES: &str = "tc.log.entries";
    /// Inclusion or consistency proof (public).
    pub const PROOF: &str = "tc.log.proof";
    /// Member status as JSON (public).
    pub const STATUS: &str = "tc.status";
    /// Co-sign a batch (members only).
    pub const COSIGN: &str = "tc.cosign";
    /// What the certificates a member issued publish in DNS, by log index
    /// (enrolled callers: members replicate their zones with it).
    pub const ZONE_FEED: &str = "tc.zone.feed";
}

/// Gossip topics.
pub mod topic {
    /// Co-signed checkpoints.
    pub const CHECKPOINTS: &str = "trustchain/checkpoints";
    /// Signed revocations.
    pub const REVOCATIONS: &str = "trustchain/revocations";
}

/// Most items a sync or entries response carries.
pub const MAX_PAGE: usize = 256;

/// The answer to an enrollment or renewal.
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    /// The new certificate.
    pub certificate: Certificate,
    /// The checkpoint its inclusion proof leads to.
    pub checkpoint: Checkpoint,
}

impl Issued {
    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes32(self.certificate.der()).bytes32(&self.checkpoint.encode());
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        Self::decode_with(buf, Certificate::from_der)
    }

    /// Parses the answer to a request for `subject`: a certificate for any
    /// other key is refused (and the key is not decoded again).
    pub fn decode_for(buf: &[u8], subject: &PublicKey) -> Result<Self, WireError> {
        Self::decode_with(buf, |der| Certificate::from_der_with_key(der, subject))
    }

    fn decode_with(
        buf: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<Certificate, CertificateError>,
    ) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "issuance response");
        let der = r.bytes32(16 * 1024)?;
        let certificate = parse(der).map_err(|e| WireError {
            what: "issuance response",
            reason: e.to_string(),
        })?;
        let checkpoint = Checkpoint::decode(r.bytes32(64 * 1024)?)?;
        r.finish()?;
        Ok(Issued {
            certificate,
            checkpoint,
        })
    }
}

/// A witness's answer to a co-sign request.
#[derive(Debug, Clone, PartialEq)]
pub enum CosignReply {
    /// The signature over the checkpoint body.
    Signed(Signature),
    /// The witness's last head is at this size; send a consistency proof
    /// from there.
    StaleView(u64),
    /// Check mode: the items refused (index, refusal code, reason); empty
    /// when all pass.
    Verdicts(Vec<(u16, u16, String)>),
}

impl CosignReply {
    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            CosignReply::Signed(s) => w.u8(1).sig(s),
            CosignReply::StaleView(n) => w.u8(2).u64(*n),
            CosignReply::Verdicts(v) => {
                w.u8(3).u16(v.len() as u16);
                for (i, code, reason) in v {
                    // The decoder refuses reasons over 1,024 bytes: cut on a
                    // character boundary.
                    let mut end = reason.len().min(1024);
                    while !reason.is_char_boundary(end) {
                        end -= 1;
                    }
                    w.u16(*i).u16(*code).bytes16(&reason.as_bytes()[..end]);
                }
                &mut w
            }
        };
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "co-sign reply");
        let reply = match r.u8()? {
            1 => CosignReply::Signed(r.sig()?),
            2 => CosignReply::StaleView(r.u64()?),
            3 => {
                let n = usize::from(r.u16()?);
                if n > crate::witness::MAX_BATCH {
                    return Err(WireError {
                        what: "co-sign reply",
                        reason: "too many verdicts".into(),
                    });
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let i = r.u16()?;
                    let code = r.u16()?;
                    let reason = String::from_utf8_lossy(r.bytes16(1024)?).into_owned();
                    v.push((i, code, reason));
                }
                CosignReply::Verdicts(v)
            }
            other => {
                return Err(WireError {
                    what: "co-sign reply",
                    reason: format!("unknown reply type {other}"),
                })
            }
        };
        r.finish()?;
        Ok(reply)
    }
}

/// What a verifier has: the largest tree size per log, and how many
/// revocations it knows (revocations are few and all are sent when that
/// count is behind).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncRequest {
    /// (log, largest tree size held).
    pub have: Vec<(u16, u64)>,
}

impl SyncRequest {
    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(self.have.len() as u8);
        for (log, size) in &self.have {
            w.u16(*log).u64(*size);
        }
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "sync request");
        let n = r.count(crate::bundle::MAX_MEMBERS)?;
        let mut have = Vec::with_capacity(n);
        for _ in 0..n {
            have.push((r.u16()?, r.u64()?));
        }
        r.finish()?;
        Ok(SyncRequest { have })
    }
}

/// Checkpoints newer than the request's and all revocations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncResponse {
    /// Newer checkpoints, oldest first per log.
    pub checkpoints: Vec<Checkpoint>,
    /// Signed revocations.
    pub revocations: Vec<SignedRevocation>,
}

impl SyncResponse {
    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.checkpoints.len() as u32);
        for c in &self.checkpoints {
            w.bytes32(&c.encode());
        }
        w.u32(self.revocations.len() as u32);
        for r in &self.revocations {
            w.bytes32(&r.encode());
        }
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "sync response");
        let n = r.u32()? as usize;
        if n > MAX_PAGE * crate::bundle::MAX_MEMBERS {
            return Err(WireError {
                what: "sync response",
                reason: "too many checkpoints".into(),
            });
        }
        let mut checkpoints = Vec::with_capacity(n);
        for _ in 0..n {
            checkpoints.push(Checkpoint::decode(r.bytes32(64 * 1024)?)?);
        }
        let n = r.u32()? as usize;
        if n > 1 << 20 {
            return Err(WireError {
                what: "sync response",
                reason: "too many revocations".into(),
            });
        }
        let mut revocations = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            revocations.push(SignedRevocation::decode(r.bytes32(4096)?)?);
        }
        r.finish()?;
        Ok(SyncResponse {
            checkpoints,
            revocations,
        })
    }
}

/// Which proof to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofRequest {
    /// Inclusion of entry `index` in the tree of `size`.
    Inclusion {
        /// Entry index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// Consistency between two sizes.
    Consistency {
        /// Older size.
        old: u64,
        /// Newer size.
        new: u64,
    },
}

impl ProofRequest {
    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            ProofRequest::Inclusion { index, size } => w.u8(1).u64(*index).u64(*size),
            ProofRequest::Consistency { old, new } => w.u8(2).u64(*old).u64(*new),
        };
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "proof request");
        let p = match r.u8()? {
            1 => ProofRequest::Inclusion {
                index: r.u64()?,
                size: r.u64()?,
            },
            2 => ProofRequest::Consistency {
                old: r.u64()?,
                new: r.u64()?,
            },
            other => {
                return Err(WireError {
                    what: "proof request",
                    reason: format!("unknown proof type {other}"),
                })
            }
        };
        r.finish()?;
        Ok(p)
    }
}

/// Encodes a list of hashes (a proof).
pub fn encode_hashes(hashes: &[Hash]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(hashes.len() as u8);
    for h in hashes {
        w.fixed(h);
    }
    w.finish()
}

/// Decodes a list of hashes.
pub fn decode_hashes(buf: &[u8]) -> Result<Vec<Hash>, WireError> {
    let mut r = Reader::new(buf, "proof");
    let n = r.count(MAX_PROOF_LEN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.array()?);
    }
    r.finish()?;
    Ok(out)
}

/// Encodes a (start, end) range request.
pub fn encode_range(start: u64, end: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(start).u64(end);
    w.finish()
}

/// Decodes a (start, end) range request.
pub fn decode_range(buf: &[u8]) -> Result<(u64, u64), WireError> {
    let mut r = Reader::new(buf, "range");
    let range = (r.u64()?, r.u64()?);
    r.finish()?;
    Ok(range)
}

/// Encodes log entries.
pub fn encode_entries(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u16(entries.len() as u16);
    for e in entries {
        w.bytes32(e);
    }
    w.finish()
}

/// Decodes log entries.
pub fn decode_entries(buf: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    let mut r = Reader::new(buf, "log entries");
    let n = usize::from(r.u16()?);
    if n > MAX_PAGE {
        return Err(WireError {
            what: "log entries",
            reason: "too many entries".into(),
        });
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.bytes32(32 * 1024)?.to_vec());
    }
    r.finish()?;
    Ok(out)
}

/// An admin's token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCreate {
    /// Name patterns allowed.
    pub names: Vec<String>,
    /// Seconds until the token expires.
    pub ttl_secs: u32,
    /// Longest certificate lifetime granted (0: the policy's).
    pub max_lifetime_secs: u32,
}

impl TokenCreate {
    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(self.names.len() as u8);
        for n in &self.names {
            w.str8(n);
        }
        w.u32(self.ttl_secs).u32(self.max_lifetime_secs);
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "token request");
        let n = r.count(crate::token::MAX_TOKEN_NAMES)?;
        let mut names = Vec::with_capacity(n);
        for _ in 0..n {
            names.push(r.str8(253)?);
        }
        let t = TokenCreate {
            names,
            ttl_secs: r.u32()?,
            max_lifetime_secs: r.u32()?,
        };
        r.finish()?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuance_response_for_another_key_is_refused() {
        use crate::checkpoint::CheckpointBody;
        use stoq::crypto::{Algorithm, KeyPair};
        use stoq::pki::{issue, CertKind, CertificateParams, Issuer};
        let ca = KeyPair::generate(Algorithm::FnDsa1024);
        let issuer = Issuer::self_signed(ca.clone(), "CN=Test CA").unwrap();
        let (mine, theirs) = (
            KeyPair::generate(Algorithm::FnDsa1024),
            KeyPair::generate(Algorithm::FnDsa1024),
        );
        let params = CertificateParams::new(CertKind::Leaf, "CN=node", std::time::Duration::from_secs(60));
        let body = CheckpointBody {
            bundle_id: [1; 32],
            log_id: 0,
            tree_size: 1,
            root: [2; 32],
            timestamp_ms: 3,
            batch_start: 0,
            batch_root: [2; 32],
        };
        let issued = Issued {
            certificate: issue(&params, mine.public_key(), &issuer).unwrap(),
            checkpoint: Checkpoint {
                signatures: vec![body.sign(0, &ca).unwrap()],
                body,
            },
        };
        let bytes = issued.encode();
        let back = Issued::decode_for(&bytes, mine.public_key()).unwrap();
        assert_eq!(back.certificate.der(), issued.certificate.der());
        assert!(refusal(Issued::decode_for(&bytes, theirs.public_key())).contains("another subject key"));
        assert!(Issued::decode(&bytes).is_ok());
    }

    #[test]
    fn long_verdict_reasons_are_cut_so_the_reply_decodes() {
        let long = "é".repeat(700);
        let reply = CosignReply::Verdicts(vec![(3, 103, long)]);
        match CosignReply::decode(&reply.encode()).unwrap() {
            CosignReply::Verdicts(v) => {
                assert_eq!(v.len(), 1);
                assert!(v[0].2.len() <= 1024 && v[0].2.starts_with('é'));
                assert_eq!((v[0].0, v[0].1), (3, 103));
            }
            other => panic!("{other:?}"),
        }
    }

    fn feed_entry(index: u64, services: usize) -> ZoneFeedEntry {
        ZoneFeedEntry {
            index,
            certificate: vec![0x30, 0x03, 0x02, 0x01, index as u8],
            address: std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, (index as u16).wrapping_add(1)),
            services: (0..services)
                .map(|i| crate::request::Service {
                    name: format!("_s{i}._udp"),
                    port: 7000 + i as u16,
                })
                .collect(),
        }
    }

    /// A response with entries at `indexes`, in that order.
    fn feed_page(indexes: &[u64], next: u64) -> ZoneFeedResponse {
        ZoneFeedResponse {
            entries: indexes.iter().map(|&i| feed_entry(i, (i % 3) as usize)).collect(),
            next,
        }
    }

    fn refusal<T: std::fmt::Debug>(r: Result<T, WireError>) -> String {
        match r {
            Err(e) => e.reason,
            Ok(v) => panic!("accepted: {v:?}"),
        }
    }

    #[test]
    fn zone_feed_request_round_trips_and_refuses_bad_ranges() {
        for (from, until) in [(0, 0), (3, 9), (7, 7), (0, u64::MAX)] {
            let req = ZoneFeedRequest { from, until };
            let bytes = req.encode();
            assert_eq!(bytes.len(), 16);
            assert_eq!(ZoneFeedRequest::decode(&bytes), Ok(req));
        }
        let backwards = ZoneFeedRequest { from: 9, until: 8 }.encode();
        assert!(refusal(ZoneFeedRequest::decode(&backwards)).contains("ends before it starts"));
        let good = ZoneFeedRequest { from: 1, until: 2 }.encode();
        for len in 0..good.len() {
            assert!(
                refusal(ZoneFeedRequest::decode(&good[..len])).contains("truncated"),
                "{len} bytes"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(refusal(ZoneFeedRequest::decode(&longer)).contains("trailing"));
    }

    #[test]
    fn zone_feed_response_round_trips() {
        for page in [
            ZoneFeedResponse::default(),
            ZoneFeedResponse {
                entries: Vec::new(),
                next: 42,
            },
            feed_page(&[0], 1),
            feed_page(&[2, 3, 10, 11, 12], 40),
            ZoneFeedResponse {
                entries: vec![feed_entry(5, crate::request::MAX_SERVICES)],
                next: u64::MAX,
            },
        ] {
            let bytes = page.encode();
            assert_eq!(ZoneFeedResponse::decode(&bytes).as_ref(), Ok(&page));
            assert_eq!(ZoneFeedResponse::decode(&bytes).unwrap().encode(), bytes);
        }
        // A full page is accepted.
        let indexes: Vec<u64> = (0..MAX_PAGE as u64).collect();
        let full = feed_page(&indexes, MAX_PAGE as u64);
        assert_eq!(ZoneFeedResponse::decode(&full.encode()), Ok(full));
    }

    #[test]
    fn zone_feed_response_refuses_hostile_pages() {
        let page = feed_page(&[2, 3, 10], 11);
        let bytes = page.encode();
        for len in 0..bytes.len() {
            assert!(
                refusal(ZoneFeedResponse::decode(&bytes[..len])).contains("truncated"),
                "{len} of {} bytes",
                bytes.len()
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(refusal(ZoneFeedResponse::decode(&longer)).contains("trailing"));

        // One entry too many, each of them well formed.
        let indexes: Vec<u64> = (0..=MAX_PAGE as u64).collect();
        let over = feed_page(&indexes, MAX_PAGE as u64 + 1).encode();
        assert!(refusal(ZoneFeedResponse::decode(&over)).contains("at most 256"));
        // The count alone is enough to refuse (nothing else is read).
        let mut header = 5u64.to_be_bytes().to_vec();
        header.extend_from_slice(&u16::MAX.to_be_bytes());
        assert!(refusal(ZoneFeedResponse::decode(&header)).contains("at most"));

        let out_of_order =
            |indexes: &[u64], next: u64| refusal(ZoneFeedResponse::decode(&feed_page(indexes, next).encode()));
        for (indexes, next) in [
            (&[3, 2][..], 10),
            (&[4, 4][..], 10),
            (&[1, 5, 5, 6][..], 10),
            (&[0, 9, 1][..], 10),
            // At or past `next`: the page would claim entries it did not send.
            (&[10][..], 10),
            (&[1, 11][..], 10),
            (&[0][..], 0),
            (&[u64::MAX][..], u64::MAX),
        ] {
            assert!(
                out_of_order(indexes, next).contains("out of order or past"),
                "{indexes:?} next {next}"
            );
        }

        // Fields past their limits.
        let mut e = feed_entry(0, 0);
        e.certificate = vec![0; 16 * 1024 + 1];
        let big = ZoneFeedResponse {
            entries: vec![e],
            next: 1,
        };
        assert!(refusal(ZoneFeedResponse::decode(&big.encode())).contains("exceeds the limit"));
        let too_many_services = ZoneFeedResponse {
            entries: vec![feed_entry(0, crate::request::MAX_SERVICES + 1)],
            next: 1,
        };
        assert!(refusal(ZoneFeedResponse::decode(&too_many_services.encode())).contains("exceed the limit"));
        let mut long_name = feed_entry(0, 1);
        long_name.services[0].name = "s".repeat(64);
        let long_name = ZoneFeedResponse {
            entries: vec![long_name],
            next: 1,
        };
        assert!(refusal(ZoneFeedResponse::decode(&long_name.encode())).contains("exceeds the limit"));
    }
}

/// Asks a member for its zone feed: what the certificates it logged at
/// indexes `from..until` publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFeedRequest {
    /// First log index wanted.
    pub from: u64,
    /// End of the range (exclusive): the caller asks only for entries a
    /// checkpoint it holds covers.
    pub until: u64,
}

impl ZoneFeedRequest {
    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.from).u64(self.until);
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "zone feed request");
        let (from, until) = (r.u64()?, r.u64()?);
        r.finish()?;
        if until < from {
            return Err(WireError {
                what: "zone feed request",
                reason: "the range ends before it starts".into(),
            });
        }
        Ok(ZoneFeedRequest { from, until })
    }
}

/// One certificate's DNS publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFeedEntry {
    /// The certificate's log index.
    pub index: u64,
    /// The certificate (DER): its names, key and validity.
    pub certificate: Vec<u8>,
    /// The address the issuing member saw the request come from.
    pub address: std::net::Ipv6Addr,
    /// Services (SRV records).
    pub services: Vec<crate::request::Service>,
}

/// A page of a member's zone feed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZoneFeedResponse {
    /// The entries, by increasing index.
    pub entries: Vec<ZoneFeedEntry>,
    /// Where the next page starts: everything in `from..next` was sent.
    pub next: u64,
}

impl ZoneFeedResponse {
    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.next).u16(self.entries.len() as u16);
        for e in &self.entries {
            w.u64(e.index).bytes32(&e.certificate).fixed(&e.address.octets());
            crate::request::write_services(&mut w, &e.services);
        }
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "zone feed response");
        let next = r.u64()?;
        let n = usize::from(r.u16()?);
        if n > MAX_PAGE {
            return Err(WireError {
                what: "zone feed response",
                reason: format!("{n} entries, at most {MAX_PAGE}"),
            });
        }
        let mut entries: Vec<ZoneFeedEntry> = Vec::with_capacity(n);
        for _ in 0..n {
            let index = r.u64()?;
            if entries.last().is_some_and(|l| l.index >= index) || index >= next {
                return Err(WireError {
                    what: "zone feed response",
                    reason: "entries out of order or past `next`".into(),
                });
            }
            let certificate = r.bytes32(16 * 1024)?.to_vec();
            let address = std::net::Ipv6Addr::from(r.array::<16>()?);
            let services = crate::request::read_services(&mut r)?;
            entries.push(ZoneFeedEntry {
                index,
                certificate,
                address,
                services,
            });
        }
        r.finish()?;
        Ok(ZoneFeedResponse { entries, next })
    }
}
