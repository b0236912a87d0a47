//! Topic publish/subscribe gossip: the sans-IO core.
//!
//! This module holds no sockets, no tasks and no clock. The async shell (in
//! the endpoint) owns the connections; it feeds [`GossipCore`] with inputs —
//! peers coming and going, decoded [`GossipWire`] messages, local
//! subscriptions and publications, and the current [`std::time::Instant`] —
//! and executes the [`Effect`]s the core returns (send a message to a peer,
//! deliver a publication to the local application). The design follows
//! quinn-proto and Malachite's core: every decision is a pure function of the
//! inputs and of a seeded RNG owned by the core, and peers are always iterated
//! in a deterministic order, so the same seed and the same inputs give the same
//! trace.
//!
//! - [`wire`](GossipWire): the messages exchanged between peers, carried as
//!   the payload of a STOQ frame of kind Gossip.
//! - [`SeenCache`]: the bounded, TTL-limited de-duplication cache.
//! - [`GossipCore`]: subscriptions, flooding with bounded fan-out and hop
//!   count, de-duplication and statistics.
//!
//! Message ids are content addresses ([`MessageId::compute`]) recomputed by
//! every receiver, so a peer cannot poison the seen cache with forged ids.

mod core;
mod seen;
#[cfg(test)]
mod sim;
mod wire;

pub use self::core::{Effect, GossipConfig, GossipCore, GossipStats, Spread};
pub use self::seen::SeenCache;
pub use self::wire::{
    validate_topic, GossipWire, MessageId, Publish, MAX_ORIGIN_LEN, MAX_TOPIC_LEN, NO_RELAY_HOPS, WIRE_VERSION,
};

/// Errors of the gossip codec and core.
///
/// Every variant leaves the core's state unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    /// The buffer ended before the named field was complete.
    #[error("gossip message truncated while reading {0}")]
    Truncated(&'static str),
    /// Bytes remained after a complete Subscribe/Unsubscribe message.
    #[error("{0} trailing byte(s) after gossip message")]
    TrailingBytes(usize),
    /// The leading tag byte names no known message.
    #[error("unknown gossip message tag {0:#04x}")]
    UnknownTag(u8),
    /// The version byte is not [`WIRE_VERSION`].
    #[error("unsupported gossip wire version {0}")]
    UnsupportedVersion(u8),
    /// A topic is longer than [`MAX_TOPIC_LEN`] bytes.
    #[error("topic of {0} bytes exceeds the maximum of {MAX_TOPIC_LEN}")]
    TopicTooLong(usize),
    /// A topic is the empty string.
    #[error("empty topic")]
    EmptyTopic,
    /// A topic on the wire is not valid UTF-8.
    #[error("topic is not valid UTF-8")]
    TopicNotUtf8,
    /// A topic contains a control character.
    #[error("topic contains a control character")]
    TopicControlChar,
    /// An origin is longer than [`MAX_ORIGIN_LEN`] bytes.
    #[error("origin of {0} bytes exceeds the maximum of {MAX_ORIGIN_LEN}")]
    OriginTooLong(usize),
    /// A payload is larger than [`GossipConfig::max_payload`].
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The id carried by a Publish is not the hash of its contents.
    #[error("message id does not match its contents")]
    IdMismatch,
    /// A direct publication ([`NO_RELAY_HOPS`]) arrived from another peer
    /// than its origin: only the publisher sends those.
    #[error("a direct publication came from a peer other than its origin")]
    DirectNotFromOrigin,
    /// A message came from a peer that was never added (or was removed).
    #[error("message from unknown peer {0}")]
    UnknownPeer(String),
    /// A peer (or the local node) subscribed to more topics than allowed.
    #[error("too many topics (maximum {max})")]
    TooManyTopics {
        /// The configured maximum ([`GossipConfig::max_topics_per_peer`]).
        max: usize,
    },
}
