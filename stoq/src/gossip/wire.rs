//! Gossip wire messages and their codec.
//!
//! Every message starts with a tag byte and a version byte:
//!
//! ```text
//! Publish:     0x01 | ver | hops u8 | seq u64 BE | id [32] | topic_len u8 | topic
//!                   | origin_len u8 | origin | payload (the rest of the buffer)
//! Subscribe:   0x02 | ver | topic_len u8 | topic
//! Unsubscribe: 0x03 | ver | topic_len u8 | topic
//! ```
//!
//! Topics are 1..=255 bytes of UTF-8 without control characters; origins are
//! at most [`MAX_ORIGIN_LEN`] bytes. Every length is bounded by the width of
//! its prefix and checked against the remaining input before anything is
//! copied; the payload of a decoded Publish is a zero-copy slice of the input.
//! Decoding a Publish does not hash it: its id is as claimed until
//! [`Publish::verify`] (which the gossip core runs before an id enters its
//! seen cache), so a relayed copy of a message already seen costs a lookup,
//! not a hash of its payload.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use sha3::{Digest, Sha3_256};

use super::GossipError;

/// The version byte written after the tag of every message.
pub const WIRE_VERSION: u8 = 1;
/// Maximum length of a topic in bytes.
pub const MAX_TOPIC_LEN: usize = 255;
/// Maximum length of a publisher's origin (node id) in bytes.
pub const MAX_ORIGIN_LEN: usize = 64;

const TAG_PUBLISH: u8 = 0x01;
const TAG_SUBSCRIBE: u8 = 0x02;
const TAG_UNSUBSCRIBE: u8 = 0x03;
/// The hop count a publisher writes on a publication it sent to every
/// subscriber itself ([`Spread::Direct`](super::Spread::Direct)): no
/// receiver relays it, whatever its `max_hops` (at most 255). Its id is
/// [`MessageId::compute_direct`], and only its origin may send it.
pub const NO_RELAY_HOPS: u8 = u8::MAX;
/// Domain separation prefix of [`MessageId::compute`].
const ID_DOMAIN: &[u8] = b"stoq-gossip-v1";
/// Domain separation prefix of [`MessageId::compute_direct`].
const DIRECT_ID_DOMAIN: &[u8] = b"stoq-gossip-direct-v1";

/// Content address of a publication: SHA3-256 over its topic, origin,
/// sequence number and payload.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// Computes the id of a publication.
    ///
    /// The hash input is `b"stoq-gossip-v1"`, then the topic, the origin and
    /// the payload each prefixed by its length as a u64 big-endian, with the
    /// sequence number (u64 big-endian) after the origin, so that no two
    /// distinct tuples share an encoding.
    pub fn compute(topic: &str, origin: &[u8], seq: u64, payload: &[u8]) -> Self {
        let mut h = Sha3_256::new();
        h.update(ID_DOMAIN);
        h.update((topic.len() as u64).to_be_bytes());
        h.update(topic.as_bytes());
        h.update((origin.len() as u64).to_be_bytes());
        h.update(origin);
        h.update(seq.to_be_bytes());
        h.update((payload.len() as u64).to_be_bytes());
        h.update(payload);
        Self(h.finalize().into())
    }

    /// The id of a direct publication ([`NO_RELAY_HOPS`]): the same hash
    /// without the payload. Nobody relays a direct publication and only
    /// its origin, over its own authenticated connection, may send it, so
    /// the transport vouches for the payload; the id only names
    /// `(topic, origin, seq)` for the seen cache, and a large payload is
    /// not hashed at all.
    pub fn compute_direct(topic: &str, origin: &[u8], seq: u64) -> Self {
        let mut h = Sha3_256::new();
        h.update(DIRECT_ID_DOMAIN);
        h.update((topic.len() as u64).to_be_bytes());
        h.update(topic.as_bytes());
        h.update((origin.len() as u64).to_be_bytes());
        h.update(origin);
        h.update(seq.to_be_bytes());
        Self(h.finalize().into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MessageId {
    /// The first 8 bytes in hex, e.g. `MessageId(1f2e3d4c5b6a7988)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageId(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for MessageId {
    /// All 32 bytes in lower-case hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Checks that a topic is 1..=[`MAX_TOPIC_LEN`] bytes with no control
/// character.
pub fn validate_topic(topic: &str) -> Result<(), GossipError> {
    if topic.is_empty() {
        return Err(GossipError::EmptyTopic);
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(GossipError::TopicTooLong(topic.len()));
    }
    if topic.chars().any(char::is_control) {
        return Err(GossipError::TopicControlChar);
    }
    Ok(())
}

/// A publication travelling through the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// `MessageId::compute(topic, origin, seq, payload)`, or
    /// `MessageId::compute_direct(topic, origin, seq)` when `hops` is
    /// [`NO_RELAY_HOPS`].
    pub id: MessageId,
    /// The topic it was published on.
    pub topic: String,
    /// The publisher's node id bytes (at most [`MAX_ORIGIN_LEN`]).
    pub origin: Bytes,
    /// The publisher's sequence number.
    pub seq: u64,
    /// How many relays it went through (0 when sent by the publisher;
    /// [`NO_RELAY_HOPS`] for a direct publication). Not covered by the id,
    /// but it selects how the id is computed.
    pub hops: u8,
    /// The application payload.
    pub payload: Bytes,
}

impl Publish {
    /// Builds a publication with hop count 0, computing its id.
    ///
    /// Does not validate; [`Publish::verify`] or encoding does.
    pub fn new(topic: String, origin: Bytes, seq: u64, payload: Bytes) -> Self {
        let id = MessageId::compute(&topic, &origin, seq, &payload);
        Self {
            id,
            topic,
            origin,
            seq,
            hops: 0,
            payload,
        }
    }

    /// A direct publication (hop count [`NO_RELAY_HOPS`]), id computed.
    pub fn new_direct(topic: String, origin: Bytes, seq: u64, payload: Bytes) -> Self {
        let id = MessageId::compute_direct(&topic, &origin, seq);
        Self {
            id,
            topic,
            origin,
            seq,
            hops: NO_RELAY_HOPS,
            payload,
        }
    }

    /// Whether it is a direct publication: sent by its origin to every
    /// subscriber, relayed by none.
    pub fn is_direct(&self) -> bool {
        self.hops == NO_RELAY_HOPS
    }

    /// Checks the topic, the origin's length and that `id` is the hash of the
    /// contents (the payload size limit is the core's business; that a
    /// direct publication came from its origin, the transport's).
    pub fn verify(&self) -> Result<(), GossipError> {
        self.check_fields()?;
        let expected = if self.is_direct() {
            MessageId::compute_direct(&self.topic, &self.origin, self.seq)
        } else {
            MessageId::compute(&self.topic, &self.origin, self.seq, &self.payload)
        };
        if expected != self.id {
            return Err(GossipError::IdMismatch);
        }
        Ok(())
    }

    fn check_fields(&self) -> Result<(), GossipError> {
        validate_topic(&self.topic)?;
        if self.origin.len() > MAX_ORIGIN_LEN {
            return Err(GossipError::OriginTooLong(self.origin.len()));
        }
        Ok(())
    }
}

/// A message of the gossip protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipWire {
    /// A publication, published or relayed.
    Publish(Publish),
    /// The sender is now subscribed to this topic.
    Subscribe(String),
    /// The sender is no longer subscribed to this topic.
    Unsubscribe(String),
}

impl GossipWire {
    /// Exact length of the encoding (assuming the value is valid).
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Publish(p) => 2 + 1 + 8 + 32 + 1 + p.topic.len() + 1 + p.origin.len() + p.payload.len(),
            Self::Subscribe(t) | Self::Unsubscribe(t) => 2 + 1 + t.len(),
        }
    }

    /// Appends the encoding to `buf`.
    ///
    /// Validates topic and origin lengths first and leaves `buf` untouched on
    /// error. The id of a Publish is written as is (not recomputed): a value
    /// with a wrong id encodes but will be refused by the receiver.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), GossipError> {
        match self {
            Self::Publish(p) => {
                p.check_fields()?;
                buf.reserve(self.encoded_len());
                buf.put_u8(TAG_PUBLISH);
                buf.put_u8(WIRE_VERSION);
                buf.put_u8(p.hops);
                buf.put_u64(p.seq);
                buf.put_slice(&p.id.0);
                put_short(buf, p.topic.as_bytes());
                put_short(buf, &p.origin);
                buf.put_slice(&p.payload);
            }
            Self::Subscribe(t) | Self::Unsubscribe(t) => {
                validate_topic(t)?;
                buf.reserve(self.encoded_len());
                buf.put_u8(if matches!(self, Self::Subscribe(_)) {
                    TAG_SUBSCRIBE
                } else {
                    TAG_UNSUBSCRIBE
                });
                buf.put_u8(WIRE_VERSION);
                put_short(buf, t.as_bytes());
            }
        }
        Ok(())
    }

    /// Encodes into a fresh buffer.
    pub fn to_bytes(&self) -> Result<Bytes, GossipError> {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Decodes one message occupying the whole of `buf`.
    ///
    /// The payload of a Publish is a slice of `buf` (no copy), and its id is
    /// recomputed and compared with the one carried.
    pub fn decode(buf: Bytes) -> Result<Self, GossipError> {
        let mut r = Reader { buf: &buf, pos: 0 };
        let tag = r.u8("tag")?;
        if !matches!(tag, TAG_PUBLISH | TAG_SUBSCRIBE | TAG_UNSUBSCRIBE) {
            return Err(GossipError::UnknownTag(tag));
        }
        let version = r.u8("version")?;
        if version != WIRE_VERSION {
            return Err(GossipError::UnsupportedVersion(version));
        }
        match tag {
            TAG_PUBLISH => {
                let hops = r.u8("hops")?;
                let seq = u64::from_be_bytes(r.array("seq")?);
                let id = MessageId(r.array("id")?);
                let topic = r.topic()?;
                let origin_len = usize::from(r.u8("origin length")?);
                if origin_len > MAX_ORIGIN_LEN {
                    return Err(GossipError::OriginTooLong(origin_len));
                }
                let start = r.pos;
                r.take(origin_len, "origin")?;
                let origin = buf.slice(start..r.pos);
                let payload = buf.slice(r.pos..);
                let p = Publish {
                    id,
                    topic,
                    origin,
                    seq,
                    hops,
                    payload,
                };
                p.check_fields()?;
                Ok(Self::Publish(p))
            }
            _ => {
                let topic = r.topic()?;
                let rest = buf.len() - r.pos;
                if rest != 0 {
                    return Err(GossipError::TrailingBytes(rest));
                }
                Ok(if tag == TAG_SUBSCRIBE {
                    Self::Subscribe(topic)
                } else {
                    Self::Unsubscribe(topic)
                })
            }
        }
    }
}

/// Writes a u8 length then the bytes; callers have checked `b.len() <= 255`.
fn put_short(buf: &mut BytesMut, b: &[u8]) {
    buf.put_u8(u8::try_from(b.len()).unwrap_or(u8::MAX));
    buf.put_slice(b);
}

/// Bounds-checked cursor over the input.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], GossipError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(GossipError::Truncated(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, GossipError> {
        Ok(self.take(1, what)?[0])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GossipError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn topic(&mut self) -> Result<String, GossipError> {
        let len = usize::from(self.u8("topic length")?);
        let raw = self.take(len, "topic")?;
        let topic = std::str::from_utf8(raw).map_err(|_| GossipError::TopicNotUtf8)?;
        validate_topic(topic)?;
        Ok(topic.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn publish(topic: &str, origin: &[u8], seq: u64, hops: u8, payload: &[u8]) -> Publish {
        let mut p = Publish::new(
            topic.to_owned(),
            Bytes::copy_from_slice(origin),
            seq,
            Bytes::copy_from_slice(payload),
        );
        p.hops = hops;
        p
    }

    #[test]
    fn direct_ids_name_the_publication_not_its_payload() {
        let origin = Bytes::from_static(b"origin");
        let a = Publish::new_direct("t".into(), origin.clone(), 7, Bytes::from_static(b"one"));
        let b = Publish::new_direct("t".into(), origin.clone(), 7, Bytes::from_static(b"two"));
        assert_eq!(a.id, b.id, "the payload is not hashed");
        assert!(a.is_direct() && a.verify().is_ok() && b.verify().is_ok());
        assert_ne!(
            a.id,
            Publish::new_direct("t".into(), origin.clone(), 8, Bytes::new()).id
        );
        assert_ne!(
            a.id,
            Publish::new_direct("u".into(), origin.clone(), 7, Bytes::new()).id
        );
        // A relayed publication with the same fields has another id, and
        // neither verifies with the other's hop count.
        let mesh = Publish::new("t".into(), origin, 7, Bytes::from_static(b"one"));
        assert_ne!(mesh.id, a.id);
        let mut relabelled = mesh.clone();
        relabelled.hops = NO_RELAY_HOPS;
        assert_eq!(relabelled.verify(), Err(GossipError::IdMismatch));
        let mut undirected = a.clone();
        undirected.hops = 0;
        assert_eq!(undirected.verify(), Err(GossipError::IdMismatch));
        // It round-trips like any other publication.
        let wire = GossipWire::Publish(a.clone());
        assert_eq!(roundtrip(&wire), wire);
    }

    fn roundtrip(m: &GossipWire) -> GossipWire {
        let b = m.to_bytes().expect("encode");
        assert_eq!(b.len(), m.encoded_len());
        GossipWire::decode(b).expect("decode")
    }

    #[test]
    fn id_depends_on_every_field_and_is_unambiguous() {
        let base = MessageId::compute("t", b"o", 1, b"p");
        assert_eq!(base, MessageId::compute("t", b"o", 1, b"p"));
        assert_ne!(base, MessageId::compute("u", b"o", 1, b"p"));
        assert_ne!(base, MessageId::compute("t", b"x", 1, b"p"));
        assert_ne!(base, MessageId::compute("t", b"o", 2, b"p"));
        assert_ne!(base, MessageId::compute("t", b"o", 1, b"q"));
        // Moving bytes across field boundaries changes the id.
        assert_ne!(
            MessageId::compute("ab", b"c", 0, b""),
            MessageId::compute("a", b"bc", 0, b"")
        );
        assert_eq!(format!("{base:?}").len(), "MessageId()".len() + 16);
        assert_eq!(base.to_string().len(), 64);
    }

    #[test]
    fn payload_is_zero_copy() {
        let m = GossipWire::Publish(publish("t", b"origin", 7, 3, b"hello world"));
        let b = m.to_bytes().expect("encode");
        let GossipWire::Publish(p) = GossipWire::decode(b.clone()).expect("decode") else {
            panic!("not a publish");
        };
        assert_eq!(&p.payload[..], b"hello world");
        let off = p.payload.as_ptr() as usize - b.as_ptr() as usize;
        assert_eq!(off, b.len() - 11);
    }

    #[test]
    fn decode_rejects_malformed_input() {
        // Empty / truncated at every prefix.
        assert_eq!(GossipWire::decode(Bytes::new()), Err(GossipError::Truncated("tag")));
        let sub = GossipWire::Subscribe("news".into()).to_bytes().expect("encode");
        for n in 1..sub.len() {
            assert!(matches!(
                GossipWire::decode(sub.slice(..n)),
                Err(GossipError::Truncated(_))
            ));
        }
        let p = GossipWire::Publish(publish("news", b"node", 1, 0, b""))
            .to_bytes()
            .expect("encode");
        for n in 1..p.len() {
            assert!(matches!(
                GossipWire::decode(p.slice(..n)),
                Err(GossipError::Truncated(_))
            ));
        }
        // Trailing bytes after a subscribe.
        let mut long = BytesMut::from(&sub[..]);
        long.put_slice(b"xx");
        assert_eq!(GossipWire::decode(long.freeze()), Err(GossipError::TrailingBytes(2)));
        // Unknown tag, bad version.
        assert_eq!(
            GossipWire::decode(Bytes::from_static(&[0x7f, 1, 1, b'a'])),
            Err(GossipError::UnknownTag(0x7f))
        );
        assert_eq!(
            GossipWire::decode(Bytes::from_static(&[TAG_SUBSCRIBE, 9, 1, b'a'])),
            Err(GossipError::UnsupportedVersion(9))
        );
        // Invalid UTF-8, control characters, empty topic.
        assert_eq!(
            GossipWire::decode(Bytes::from_static(&[TAG_SUBSCRIBE, 1, 2, 0xc3, 0x28])),
            Err(GossipError::TopicNotUtf8)
        );
        assert_eq!(
            GossipWire::decode(Bytes::from_static(&[TAG_SUBSCRIBE, 1, 2, b'a', b'\n'])),
            Err(GossipError::TopicControlChar)
        );
        assert_eq!(
            GossipWire::decode(Bytes::from_static(&[TAG_UNSUBSCRIBE, 1, 0])),
            Err(GossipError::EmptyTopic)
        );
        // Topic length byte larger than the input.
        assert_eq!(
            GossipWire::decode(Bytes::from_static(&[TAG_SUBSCRIBE, 1, 200, b'a'])),
            Err(GossipError::Truncated("topic"))
        );
    }

    #[test]
    fn decode_rejects_long_origin_and_forged_id() {
        let mut b = BytesMut::new();
        b.put_u8(TAG_PUBLISH);
        b.put_u8(WIRE_VERSION);
        b.put_u8(0);
        b.put_u64(1);
        b.put_slice(&[0u8; 32]);
        put_short(&mut b, b"t");
        b.put_u8(65);
        b.put_slice(&[0u8; 65]);
        assert_eq!(GossipWire::decode(b.freeze()), Err(GossipError::OriginTooLong(65)));

        let mut p = publish("t", b"o", 1, 0, b"payload");
        p.id.0[0] ^= 1;
        let b = GossipWire::Publish(p).to_bytes().expect("encode");
        // Decoding takes the id as claimed; verifying it refuses.
        let Ok(GossipWire::Publish(decoded)) = GossipWire::decode(b) else {
            panic!("a publish decodes")
        };
        assert_eq!(decoded.verify(), Err(GossipError::IdMismatch));
    }

    #[test]
    fn encode_refuses_invalid_values_and_leaves_buffer_untouched() {
        let mut buf = BytesMut::from(&b"keep"[..]);
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(
            GossipWire::Subscribe(long.clone()).encode(&mut buf),
            Err(GossipError::TopicTooLong(256))
        );
        assert_eq!(
            GossipWire::Publish(publish(&long, b"o", 0, 0, b"")).encode(&mut buf),
            Err(GossipError::TopicTooLong(256))
        );
        assert_eq!(
            GossipWire::Publish(publish("t", &[0u8; 65], 0, 0, b"")).encode(&mut buf),
            Err(GossipError::OriginTooLong(65))
        );
        assert_eq!(&buf[..], b"keep");
        // Exactly 255 bytes is fine.
        let max = "é".repeat(127) + "a";
        assert_eq!(max.len(), MAX_TOPIC_LEN);
        assert_eq!(
            roundtrip(&GossipWire::Unsubscribe(max.clone())),
            GossipWire::Unsubscribe(max)
        );
    }

    fn topic_strategy() -> impl Strategy<Value = String> {
        // Non-control characters, at most 60 chars (<= 240 bytes).
        "\\PC{1,60}"
    }

    fn wire_strategy() -> impl Strategy<Value = GossipWire> {
        prop_oneof![
            (
                topic_strategy(),
                proptest::collection::vec(any::<u8>(), 0..=MAX_ORIGIN_LEN),
                any::<u64>(),
                any::<u8>(),
                proptest::collection::vec(any::<u8>(), 0..512),
            )
                .prop_map(|(t, o, s, h, p)| GossipWire::Publish(publish(&t, &o, s, h, &p))),
            topic_strategy().prop_map(GossipWire::Subscribe),
            topic_strategy().prop_map(GossipWire::Unsubscribe),
        ]
    }

    proptest! {
        #[test]
        fn prop_roundtrip(m in wire_strategy()) {
            prop_assert_eq!(roundtrip(&m), m);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = GossipWire::decode(Bytes::from(b));
        }

        #[test]
        fn prop_tagged_garbage_never_panics(
            tag in 0u8..5,
            ver in 0u8..3,
            rest in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut b = vec![tag, ver];
            b.extend_from_slice(&rest);
            let _ = GossipWire::decode(Bytes::from(b));
        }

        #[test]
        fn prop_corrupted_publish_is_refused(
            m in wire_strategy(),
            idx in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            // Flipping any bit of a Publish except the hop count makes decode
            // fail (bad length, bad topic) or the decoded value fail
            // verification (id mismatch) - never a silent acceptance of
            // altered content.
            if let GossipWire::Publish(p) = &m {
                let mut b = BytesMut::from(&m.to_bytes().expect("encode")[..]);
                let i = idx.index(b.len());
                b[i] ^= 1 << bit;
                let res = GossipWire::decode(b.freeze());
                if i == 2 {
                    let GossipWire::Publish(q) = res.expect("hops is not covered") else {
                        panic!("not a publish");
                    };
                    prop_assert_eq!(q.id, p.id);
                    // Hops select the id's formula: turning a publication
                    // direct or back fails verification.
                    prop_assert_eq!(q.verify().is_ok(), q.is_direct() == p.is_direct());
                } else {
                    if let Ok(GossipWire::Publish(q)) = res {
                        prop_assert!(q.verify().is_err());
                    }
                }
            }
        }
    }
}
