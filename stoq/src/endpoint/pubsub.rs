//! The async shell around [`GossipCore`]: feeds it frames from peers and
//! carries out its effects (send to a peer's message stream, deliver to
//! local subscribers).

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::mpsc;

use crate::crypto::NodeId;
use crate::frame::{Frame, FrameKind};
use crate::gossip::{Effect, GossipConfig, GossipCore, GossipWire, MessageId, Spread};
use crate::Result;

/// A message delivered to a local subscriber.
#[derive(Debug, Clone)]
pub struct GossipMessage {
    /// Its topic.
    pub topic: String,
    /// Its id (de-duplication key).
    pub id: MessageId,
    /// The publisher's node id bytes.
    pub origin: Bytes,
    /// The payload.
    pub payload: Bytes,
}

/// Capacity of each subscriber's queue; a subscriber that falls this far
/// behind loses messages (counted) rather than stalling the mesh.
const SUBSCRIBER_QUEUE: usize = 4096;

struct PeerLink {
    conn_id: usize,
    outbound: mpsc::Sender<Frame>,
}

/// Publish/subscribe over every connection of an endpoint.
pub struct Gossip {
    core: Mutex<GossipCore<NodeId>>,
    /// Live links per peer node, newest last (two nodes that dial each
    /// other have two connections; gossip uses the newest live one).
    peers: Mutex<HashMap<NodeId, Vec<PeerLink>>>,
    subscribers: Mutex<HashMap<String, Vec<mpsc::Sender<GossipMessage>>>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Gossip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gossip").finish_non_exhaustive()
    }
}

impl Gossip {
    pub(crate) fn new(local: NodeId, config: GossipConfig) -> Self {
        let seed = rand::random();
        Gossip {
            core: Mutex::new(GossipCore::new(Bytes::copy_from_slice(&local.0), config, seed)),
            peers: Mutex::new(HashMap::new()),
            subscribers: Mutex::new(HashMap::new()),
            dropped: Default::default(),
        }
    }

    /// Subscribes to `topic`; messages published by others arrive on the
    /// returned receiver, each exactly once.
    pub fn subscribe(&self, topic: &str) -> Result<mpsc::Receiver<GossipMessage>> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let effects = {
            let mut core = lock(&self.core);
            if core.is_subscribed(topic) {
                Vec::new()
            } else {
                core.subscribe(topic)?
            }
        };
        lock(&self.subscribers).entry(topic.to_string()).or_default().push(tx);
        self.run(effects);
        Ok(rx)
    }

    /// Publishes `payload` on `topic` to the mesh (not delivered locally).
    pub fn publish(&self, topic: &str, payload: Bytes) -> Result<MessageId> {
        self.publish_with(topic, payload, Spread::Mesh)
    }

    /// Publishes `payload` on `topic`, spread as `spread` says (not
    /// delivered locally).
    pub fn publish_with(&self, topic: &str, payload: Bytes, spread: Spread) -> Result<MessageId> {
        let (id, effects) = lock(&self.core).publish_with(topic, payload, spread, Instant::now())?;
        self.run(effects);
        Ok(id)
    }

    /// How many connected peers announced `topic`: those a
    /// [`Spread::Direct`] publication on it reaches.
    pub fn subscribed_peers(&self, topic: &str) -> usize {
        lock(&self.core).subscribers(topic).count()
    }

    /// Counters of the core, plus messages dropped at full queues.
    pub fn stats(&self) -> (crate::gossip::GossipStats, u64) {
        (
            lock(&self.core).stats(),
            self.dropped.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    pub(crate) fn add_peer(&self, node: NodeId, conn_id: usize, outbound: mpsc::Sender<Frame>) {
        let first = {
            let mut peers = lock(&self.peers);
            let links = peers.entry(node).or_default();
            links.push(PeerLink { conn_id, outbound });
            links.len() == 1
        };
        // A second link to a known peer changes nothing in the core.
        let effects = if first {
            lock(&self.core).add_peer(node)
        } else {
            Vec::new()
        };
        self.run(effects);
    }

    pub(crate) fn remove_peer(&self, node: &NodeId, conn_id: usize) {
        let mut peers = lock(&self.peers);
        if let Some(links) = peers.get_mut(node) {
            links.retain(|l| l.conn_id != conn_id);
            if links.is_empty() {
                peers.remove(node);
                lock(&self.core).remove_peer(node);
            }
        }
    }

    pub(crate) fn handle_frame(&self, from: NodeId, payload: Bytes) -> Result<()> {
        let msg = GossipWire::decode(payload)?;
        let effects = match msg {
            GossipWire::Publish(p) => {
                // Copies already seen (most relayed ones) are dropped
                // before hashing; a new one is hashed outside the lock,
                // so that connections check large payloads in parallel.
                if lock(&self.core).note_duplicate(&p.id) {
                    return Ok(());
                }
                // The connection authenticated the sender: a direct
                // publication is taken only from its origin.
                if p.is_direct() && p.origin.as_ref() != from.0.as_slice() {
                    return Err(crate::gossip::GossipError::DirectNotFromOrigin.into());
                }
                p.verify()?;
                let mut core = lock(&self.core);
                core.tick(Instant::now());
                core.handle_verified(from, p, Instant::now())?
            }
            msg => {
                let mut core = lock(&self.core);
                core.tick(Instant::now());
                core.handle(from, msg, Instant::now())?
            }
        };
        self.run(effects);
        Ok(())
    }

    fn run(&self, effects: Vec<Effect<NodeId>>) {
        use std::sync::atomic::Ordering::Relaxed;
        // A publication sent to several peers is encoded once (the effects
        // of one call list its sends together).
        let mut last: Option<(MessageId, u8, Bytes)> = None;
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => {
                    let key = match &msg {
                        GossipWire::Publish(p) => Some((p.id, p.hops)),
                        _ => None,
                    };
                    let encoded = match (&last, key) {
                        (Some((id, hops, bytes)), Some(k)) if (*id, *hops) == k => bytes.clone(),
                        _ => {
                            let mut buf = BytesMut::with_capacity(msg.encoded_len());
                            if msg.encode(&mut buf).is_err() {
                                continue;
                            }
                            let bytes = buf.freeze();
                            if let Some((id, hops)) = key {
                                last = Some((id, hops, bytes.clone()));
                            }
                            bytes
                        }
                    };
                    let frame = Frame::new(FrameKind::Gossip, 0, encoded);
                    let peers = lock(&self.peers);
                    if let Some(link) = peers.get(&to).and_then(|links| links.last()) {
                        // A full link drops: gossip must never block the mesh.
                        if link.outbound.try_send(frame).is_err() {
                            self.dropped.fetch_add(1, Relaxed);
                        }
                    }
                }
                Effect::Deliver {
                    topic,
                    id,
                    origin,
                    payload,
                } => {
                    let mut subs = lock(&self.subscribers);
                    if let Some(list) = subs.get_mut(&topic) {
                        let msg = GossipMessage {
                            topic: topic.clone(),
                            id,
                            origin,
                            payload,
                        };
                        list.retain(|tx| match tx.try_send(msg.clone()) {
                            Ok(()) => true,
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                self.dropped.fetch_add(1, Relaxed);
                                true
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => false,
                        });
                    }
                }
            }
        }
    }
}

/// Locks a mutex, recovering from poisoning (state stays consistent: every
/// critical section here is a single call into the core or a map).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::{GossipError, Publish};

    #[test]
    fn direct_publications_are_taken_only_from_their_origin() {
        let (a, b) = (NodeId([1; 32]), NodeId([2; 32]));
        let gossip = Gossip::new(NodeId([9; 32]), GossipConfig::default());
        let (tx, _rx) = mpsc::channel(16);
        gossip.add_peer(a, 1, tx.clone());
        gossip.add_peer(b, 2, tx);
        let mut sub = gossip.subscribe("t").expect("subscribe");
        let from_a = |seq| {
            let p = Publish::new_direct("t".into(), Bytes::copy_from_slice(&a.0), seq, Bytes::from_static(b"x"));
            GossipWire::Publish(p).to_bytes().expect("encode")
        };
        // b forwards a's direct publication: refused, nothing delivered.
        let err = gossip.handle_frame(b, from_a(1)).expect_err("not from its origin");
        assert!(
            matches!(err, crate::Error::Gossip(GossipError::DirectNotFromOrigin)),
            "{err}"
        );
        assert!(sub.try_recv().is_err());
        // From a itself it is delivered, once.
        gossip.handle_frame(a, from_a(1)).expect("from its origin");
        gossip.handle_frame(a, from_a(1)).expect("a copy is dropped");
        assert_eq!(sub.try_recv().expect("delivered").payload, Bytes::from_static(b"x"));
        assert!(sub.try_recv().is_err());
    }
}
