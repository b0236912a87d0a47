//! The gossip state machine.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::wire::{validate_topic, GossipWire, MessageId, Publish, MAX_ORIGIN_LEN};
use super::{GossipError, SeenCache};

/// Tuning of a [`GossipCore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipConfig {
    /// Maximum number of peers a publication is sent or relayed to.
    pub fanout: usize,
    /// A publication is relayed only while `hops + 1 < max_hops`.
    pub max_hops: u8,
    /// How long a seen id is remembered.
    pub seen_ttl: Duration,
    /// Maximum number of seen ids remembered.
    pub seen_capacity: usize,
    /// Maximum number of topics one peer (or the local node) may subscribe to.
    pub max_topics_per_peer: usize,
    /// Maximum payload size in bytes, for local and received publications.
    pub max_payload: usize,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            fanout: 6,
            max_hops: 8,
            seen_ttl: Duration::from_secs(120),
            seen_capacity: 100_000,
            max_topics_per_peer: 1024,
            max_payload: 1 << 20,
        }
    }
}

/// How far a local publication travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// To up to `fanout` peers, each relaying it onward: it reaches nodes
    /// the publisher has no connection to.
    Mesh,
    /// To every peer subscribed to the topic, none relaying it: for
    /// members of a full mesh (validators connected to each other), where
    /// relays would only multiply the traffic of large payloads. A member
    /// not connected to the publisher misses it.
    Direct,
}

/// Counters of a [`GossipCore`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Publications delivered to the local application.
    pub delivered: u64,
    /// Publications received again after having been seen (dropped).
    pub duplicates: u64,
    /// Publish messages sent while relaying others' publications (one per
    /// destination peer).
    pub forwarded: u64,
    /// Publications published locally.
    pub published: u64,
}

/// What the shell must do after feeding the core an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect<P> {
    /// Send `msg` to peer `to` (encoded as the payload of a Gossip frame).
    Send {
        /// The destination peer.
        to: P,
        /// The message to send.
        msg: GossipWire,
    },
    /// Hand a publication received from the mesh to the local application.
    Deliver {
        /// Its topic (one the local node is subscribed to).
        topic: String,
        /// Its id.
        id: MessageId,
        /// The publisher's node id bytes.
        origin: Bytes,
        /// The application payload.
        payload: Bytes,
    },
}

/// Sans-IO gossip state machine over peers identified by `P`.
///
/// Publications are flooded with bounded fan-out and a hop limit, and
/// de-duplicated by content id. Peers announce their subscriptions; relays
/// prefer subscribed peers but fill the fan-out with others so that
/// non-subscribers still relay in sparse meshes.
///
/// Deterministic: peer selection uses a [`StdRng`] seeded in
/// [`GossipCore::new`] and peers are kept in ordered collections, so the
/// same seed and inputs yield the same effects.
pub struct GossipCore<P: Clone + Ord + fmt::Debug> {
    config: GossipConfig,
    local_origin: Bytes,
    next_seq: u64,
    rng: StdRng,
    subscriptions: BTreeSet<String>,
    peers: BTreeMap<P, BTreeSet<String>>,
    seen: SeenCache,
    stats: GossipStats,
}

impl<P: Clone + Ord + fmt::Debug> fmt::Debug for GossipCore<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GossipCore")
            .field("config", &self.config)
            .field("subscriptions", &self.subscriptions)
            .field("peers", &self.peers)
            .field("seen", &self.seen.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<P: Clone + Ord + fmt::Debug> GossipCore<P> {
    /// A core publishing as `local_origin` (the node id bytes, at most
    /// [`MAX_ORIGIN_LEN`]: a longer origin makes [`GossipCore::publish`]
    /// fail), with its RNG seeded by `seed`.
    ///
    /// The sequence counter starts at a value drawn from the RNG, so that a
    /// restarted node with a fresh seed does not reproduce the ids of its
    /// previous run (which peers would still hold as seen).
    pub fn new(local_origin: Bytes, config: GossipConfig, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        // Leave 2^63 publications of head room before the counter wraps.
        let next_seq = rng.gen::<u64>() >> 1;
        let seen = SeenCache::new(config.seen_capacity, config.seen_ttl);
        Self {
            config,
            local_origin,
            next_seq,
            rng,
            subscriptions: BTreeSet::new(),
            peers: BTreeMap::new(),
            seen,
            stats: GossipStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GossipConfig {
        &self.config
    }

    /// The origin bytes this core publishes as.
    pub fn local_origin(&self) -> &Bytes {
        &self.local_origin
    }

    /// Registers a connected peer and returns the Subscribe messages
    /// announcing our current subscriptions to it. Adding a known peer keeps
    /// the topics it announced and announces ours again.
    pub fn add_peer(&mut self, p: P) -> Vec<Effect<P>> {
        let effects = self
            .subscriptions
            .iter()
            .map(|t| Effect::Send {
                to: p.clone(),
                msg: GossipWire::Subscribe(t.clone()),
            })
            .collect();
        self.peers.entry(p).or_default();
        effects
    }

    /// Forgets a peer and the topics it announced.
    pub fn remove_peer(&mut self, p: &P) {
        self.peers.remove(p);
    }

    /// The known peers, in order.
    pub fn peers(&self) -> impl Iterator<Item = &P> + '_ {
        self.peers.keys()
    }

    /// The topics peer `p` announced, or `None` if `p` is unknown.
    pub fn peer_topics(&self, p: &P) -> Option<&BTreeSet<String>> {
        self.peers.get(p)
    }

    /// The peers that announced `topic`: those a direct publication on it
    /// reaches.
    pub fn subscribers(&self, topic: &str) -> impl Iterator<Item = &P> + '_ {
        let topic = topic.to_owned();
        self.peers
            .iter()
            .filter(move |(_, topics)| topics.contains(&topic))
            .map(|(p, _)| p)
    }

    /// Subscribes the local node to `topic` and returns the Subscribe
    /// announcements for every peer (none if already subscribed).
    pub fn subscribe(&mut self, topic: &str) -> Result<Vec<Effect<P>>, GossipError> {
        validate_topic(topic)?;
        if self.subscriptions.contains(topic) {
            return Ok(Vec::new());
        }
        if self.subscriptions.len() >= self.config.max_topics_per_peer {
            return Err(GossipError::TooManyTopics {
                max: self.config.max_topics_per_peer,
            });
        }
        self.subscriptions.insert(topic.to_owned());
        Ok(self.announce(|| GossipWire::Subscribe(topic.to_owned())))
    }

    /// Unsubscribes the local node from `topic` and returns the Unsubscribe
    /// announcements for every peer (none if not subscribed).
    pub fn unsubscribe(&mut self, topic: &str) -> Result<Vec<Effect<P>>, GossipError> {
        validate_topic(topic)?;
        if !self.subscriptions.remove(topic) {
            return Ok(Vec::new());
        }
        Ok(self.announce(|| GossipWire::Unsubscribe(topic.to_owned())))
    }

    /// Whether the local node is subscribed to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.subscriptions.contains(topic)
    }

    /// The local subscriptions, in order.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> + '_ {
        self.subscriptions.iter().map(String::as_str)
    }

    /// Publishes `payload` on `topic`: assigns the next sequence number,
    /// marks the id as seen and sends it to up to `fanout` peers (subscribers
    /// of the topic first).
    ///
    /// The publication is **not** delivered locally, even if the local node
    /// is subscribed; the caller already has it. Publishing needs no local
    /// subscription.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: Bytes,
        now: Instant,
    ) -> Result<(MessageId, Vec<Effect<P>>), GossipError> {
        self.publish_with(topic, payload, Spread::Mesh, now)
    }

    /// [`GossipCore::publish`], spreading the publication as `spread` says.
    pub fn publish_with(
        &mut self,
        topic: &str,
        payload: Bytes,
        spread: Spread,
        now: Instant,
    ) -> Result<(MessageId, Vec<Effect<P>>), GossipError> {
        validate_topic(topic)?;
        if self.local_origin.len() > MAX_ORIGIN_LEN {
            return Err(GossipError::OriginTooLong(self.local_origin.len()));
        }
        self.check_payload(&payload)?;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let (topic_owned, origin) = (topic.to_owned(), self.local_origin.clone());
        let p = match spread {
            Spread::Mesh => Publish::new(topic_owned, origin, seq, payload),
            Spread::Direct => Publish::new_direct(topic_owned, origin, seq, payload),
        };
        let id = p.id;
        self.seen.insert(id, now);
        self.stats.published += 1;
        let targets = match spread {
            Spread::Mesh => self.select_targets(topic, None),
            Spread::Direct => self.subscribers(topic).cloned().collect(),
        };
        tracing::trace!(?id, topic, peers = targets.len(), "gossip publish");
        Ok((id, Self::sends(targets, &p)))
    }

    /// Handles a message received from peer `from`.
    ///
    /// - Publish: refused if its payload is too large; dropped and counted
    ///   as a duplicate if its id was seen (without hashing it); refused if
    ///   its id does not match its contents; otherwise marked seen,
    ///   delivered if subscribed, and
    ///   relayed with `hops + 1` to up to `fanout` peers other than `from`
    ///   while `hops + 1 < max_hops`.
    /// - Subscribe / Unsubscribe: updates the topics of `from`; a Subscribe
    ///   beyond `max_topics_per_peer` is refused.
    ///
    /// Messages from unknown peers are refused. On error the state is
    /// unchanged.
    pub fn handle(&mut self, from: P, msg: GossipWire, now: Instant) -> Result<Vec<Effect<P>>, GossipError> {
        let max_topics = self.config.max_topics_per_peer;
        let Some(topics) = self.peers.get_mut(&from) else {
            return Err(GossipError::UnknownPeer(format!("{from:?}")));
        };
        match msg {
            GossipWire::Subscribe(topic) => {
                validate_topic(&topic)?;
                if !topics.contains(&topic) {
                    if topics.len() >= max_topics {
                        return Err(GossipError::TooManyTopics { max: max_topics });
                    }
                    topics.insert(topic);
                }
                Ok(Vec::new())
            }
            GossipWire::Unsubscribe(topic) => {
                validate_topic(&topic)?;
                topics.remove(&topic);
                Ok(Vec::new())
            }
            GossipWire::Publish(p) => {
                self.check_payload(&p.payload)?;
                // A copy of a message already seen is dropped unhashed:
                // its id was verified when it entered the cache, and a
                // forged copy claiming it changes nothing.
                if self.note_duplicate(&p.id) {
                    return Ok(Vec::new());
                }
                p.verify()?;
                self.relay(from, p, now)
            }
        }
    }

    /// Whether a publication with `id` was seen already, counting it as a
    /// duplicate if so: a caller can skip hashing a copy it would drop.
    pub fn note_duplicate(&mut self, id: &MessageId) -> bool {
        let seen = self.seen.contains(id);
        if seen {
            self.stats.duplicates += 1;
        }
        seen
    }

    /// [`GossipCore::handle`] of a publication whose id the caller has
    /// checked with [`Publish::verify`] (outside any lock around the
    /// core: hashing a large payload takes a while).
    pub fn handle_verified(&mut self, from: P, p: Publish, now: Instant) -> Result<Vec<Effect<P>>, GossipError> {
        if !self.peers.contains_key(&from) {
            return Err(GossipError::UnknownPeer(format!("{from:?}")));
        }
        self.check_payload(&p.payload)?;
        self.relay(from, p, now)
    }

    /// Marks a verified publication seen, delivers it if subscribed and
    /// relays it.
    fn relay(&mut self, from: P, mut p: Publish, now: Instant) -> Result<Vec<Effect<P>>, GossipError> {
        if !self.seen.insert(p.id, now) {
            self.stats.duplicates += 1;
            return Ok(Vec::new());
        }
        let mut effects = Vec::new();
        if self.subscriptions.contains(&p.topic) {
            self.stats.delivered += 1;
            effects.push(Effect::Deliver {
                topic: p.topic.clone(),
                id: p.id,
                origin: p.origin.clone(),
                payload: p.payload.clone(),
            });
        }
        if u16::from(p.hops) + 1 < u16::from(self.config.max_hops) {
            p.hops += 1;
            let targets = self.select_targets(&p.topic, Some(&from));
            self.stats.forwarded += targets.len() as u64;
            effects.extend(Self::sends(targets, &p));
        }
        Ok(effects)
    }

    /// Expires old entries of the seen cache.
    pub fn tick(&mut self, now: Instant) {
        self.seen.expire(now);
    }

    /// The counters.
    pub fn stats(&self) -> GossipStats {
        self.stats
    }

    /// Whether `id` is in the seen cache.
    pub fn has_seen(&self, id: &MessageId) -> bool {
        self.seen.contains(id)
    }

    /// Number of ids in the seen cache.
    pub fn seen_len(&self) -> usize {
        self.seen.len()
    }

    fn check_payload(&self, payload: &Bytes) -> Result<(), GossipError> {
        if payload.len() > self.config.max_payload {
            return Err(GossipError::PayloadTooLarge {
                len: payload.len(),
                max: self.config.max_payload,
            });
        }
        Ok(())
    }

    fn announce(&self, msg: impl Fn() -> GossipWire) -> Vec<Effect<P>> {
        self.peers
            .keys()
            .map(|p| Effect::Send {
                to: p.clone(),
                msg: msg(),
            })
            .collect()
    }

    fn sends(targets: Vec<P>, p: &Publish) -> Vec<Effect<P>> {
        targets
            .into_iter()
            .map(|to| Effect::Send {
                to,
                msg: GossipWire::Publish(p.clone()),
            })
            .collect()
    }

    /// Up to `fanout` peers other than `exclude`: subscribers of `topic` in
    /// random order first, then the others in random order.
    fn select_targets(&mut self, topic: &str, exclude: Option<&P>) -> Vec<P> {
        let fanout = self.config.fanout;
        let mut subscribed = Vec::new();
        let mut others = Vec::new();
        for (p, topics) in &self.peers {
            if Some(p) == exclude {
                continue;
            }
            if topics.contains(topic) {
                subscribed.push(p);
            } else {
                others.push(p);
            }
        }
        let mut out: Vec<P> = Vec::with_capacity(fanout.min(subscribed.len() + others.len()));
        let (chosen, _) = subscribed.partial_shuffle(&mut self.rng, fanout);
        out.extend(chosen.iter().map(|p| (*p).clone()));
        let room = fanout - out.len();
        if room > 0 {
            let (chosen, _) = others.partial_shuffle(&mut self.rng, room);
            out.extend(chosen.iter().map(|p| (*p).clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Core = GossipCore<u32>;

    fn core(seed: u64) -> Core {
        GossipCore::new(Bytes::from_static(b"me"), GossipConfig::default(), seed)
    }

    fn sends(effects: &[Effect<u32>]) -> Vec<(u32, GossipWire)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { to, msg } => Some((*to, msg.clone())),
                Effect::Deliver { .. } => None,
            })
            .collect()
    }

    fn foreign(topic: &str, seq: u64, hops: u8) -> Publish {
        let mut p = Publish::new(
            topic.into(),
            Bytes::from_static(b"other"),
            seq,
            Bytes::from_static(b"data"),
        );
        p.hops = hops;
        p
    }

    #[test]
    fn bounded_fanout_on_publish_and_relay() {
        let now = Instant::now();
        let mut c = core(1);
        for p in 0..20 {
            assert!(c.add_peer(p).is_empty());
        }
        let (_, eff) = c.publish("t", Bytes::from_static(b"x"), now).expect("publish");
        let s = sends(&eff);
        assert_eq!(s.len(), 6);
        assert_eq!(eff.len(), 6, "no local delivery on publish");
        let distinct: BTreeSet<u32> = s.iter().map(|(to, _)| *to).collect();
        assert_eq!(distinct.len(), 6);
        assert_eq!(c.stats().published, 1);

        let eff = c
            .handle(3, GossipWire::Publish(foreign("t", 1, 0)), now)
            .expect("handle");
        let s = sends(&eff);
        assert_eq!(s.len(), 6);
        assert!(s
            .iter()
            .all(|(to, m)| *to != 3 && matches!(m, GossipWire::Publish(p) if p.hops == 1)));
        assert_eq!(c.stats().forwarded, 6);
    }

    #[test]
    fn relay_prefers_subscribers_and_fills_with_others() {
        let now = Instant::now();
        let mut c = core(2);
        for p in 0..20 {
            c.add_peer(p);
        }
        for p in [4, 9, 15] {
            c.handle(p, GossipWire::Subscribe("t".into()), now).expect("subscribe");
        }
        for seq in 0..50 {
            let eff = c
                .handle(0, GossipWire::Publish(foreign("t", seq, 0)), now)
                .expect("handle");
            let to: BTreeSet<u32> = sends(&eff).into_iter().map(|(to, _)| to).collect();
            assert_eq!(to.len(), 6);
            assert!([4, 9, 15].iter().all(|p| to.contains(p)), "{to:?}");
        }
        // With more subscribers than the fan-out, only subscribers are chosen.
        for p in 10..20 {
            c.handle(p, GossipWire::Subscribe("t".into()), now).expect("subscribe");
        }
        let (_, eff) = c.publish("t", Bytes::new(), now).expect("publish");
        let subs = c.peers().filter(|p| c.peer_topics(p).is_some_and(|t| t.contains("t")));
        let subs: BTreeSet<u32> = subs.copied().collect();
        assert!(sends(&eff).iter().all(|(to, _)| subs.contains(to)));
    }

    #[test]
    fn hop_limit_and_delivery() {
        let now = Instant::now();
        let mut c = core(3);
        c.add_peer(1);
        c.add_peer(2);
        c.subscribe("t").expect("subscribe");
        // hops 6: 6 + 1 < 8, relayed with hops 7.
        let eff = c
            .handle(1, GossipWire::Publish(foreign("t", 1, 6)), now)
            .expect("handle");
        assert_eq!(eff.len(), 2);
        assert!(matches!(&eff[0], Effect::Deliver { topic, .. } if topic == "t"));
        assert!(matches!(&eff[1], Effect::Send { to: 2, msg: GossipWire::Publish(p) } if p.hops == 7));
        // hops 7: delivered, not relayed.
        let eff = c
            .handle(1, GossipWire::Publish(foreign("t", 2, 7)), now)
            .expect("handle");
        assert_eq!(eff.len(), 1);
        assert!(matches!(&eff[0], Effect::Deliver { .. }));
        // hops 254 does not overflow (255 marks a direct publication).
        let eff = c
            .handle(1, GossipWire::Publish(foreign("t", 3, 254)), now)
            .expect("handle");
        assert_eq!(eff.len(), 1);
        assert_eq!(c.stats().delivered, 3);
    }

    #[test]
    fn seen_ids_are_dropped_unhashed_and_forgeries_never_enter() {
        let now = Instant::now();
        let mut c = core(6);
        c.add_peer(1);
        c.add_peer(2);
        c.subscribe("t").expect("subscribe");
        let genuine = foreign("t", 1, 0);
        let mut forged = genuine.clone();
        forged.payload = Bytes::from_static(b"evil");
        // A forgery of an id not seen yet is hashed and refused, leaving
        // no trace.
        assert_eq!(
            c.handle(1, GossipWire::Publish(forged.clone()), now).err(),
            Some(GossipError::IdMismatch)
        );
        assert!(!c.has_seen(&genuine.id));
        let eff = c.handle(2, GossipWire::Publish(genuine.clone()), now).expect("genuine");
        assert!(eff
            .iter()
            .any(|e| matches!(e, Effect::Deliver { payload, .. } if payload == &genuine.payload)));
        // A copy claiming a seen id is dropped without being hashed: the
        // genuine content was delivered already.
        let eff = c
            .handle(1, GossipWire::Publish(forged), now)
            .expect("a copy of a seen id is dropped");
        assert!(eff.is_empty());
        assert_eq!(c.stats().duplicates, 1);
        assert!(c.note_duplicate(&genuine.id));
        assert_eq!(c.stats().duplicates, 2);
        // The verified path still refuses unknown peers, and relays.
        assert!(matches!(
            c.handle_verified(9, foreign("t", 2, 0), now),
            Err(GossipError::UnknownPeer(_))
        ));
        let eff = c.handle_verified(1, foreign("t", 2, 0), now).expect("verified");
        assert_eq!(eff.len(), 2, "delivered and relayed to peer 2: {eff:?}");
    }

    #[test]
    fn direct_publications_reach_every_subscriber_and_are_not_relayed() {
        let now = Instant::now();
        let mut c = core(7);
        for p in 0..20 {
            c.add_peer(p);
        }
        // More subscribers than the fan-out: a direct publication reaches
        // them all, and nobody else.
        let subscribers: BTreeSet<u32> = (0..10).collect();
        for &p in &subscribers {
            c.handle(p, GossipWire::Subscribe("t".into()), now).expect("subscribe");
        }
        let (id, eff) = c
            .publish_with("t", Bytes::from_static(b"block"), Spread::Direct, now)
            .expect("publish");
        let s = sends(&eff);
        let to: BTreeSet<u32> = s.iter().map(|(to, _)| *to).collect();
        assert_eq!(to, subscribers);
        assert!(s
            .iter()
            .all(|(_, m)| matches!(m, GossipWire::Publish(p) if p.is_direct() && p.id == id)));

        // A receiver delivers one, relays none, and drops a second copy.
        let mut r = core(8);
        r.add_peer(1);
        r.add_peer(2);
        r.subscribe("t").expect("subscribe");
        let direct = Publish::new_direct("t".into(), Bytes::from_static(b"other"), 1, Bytes::from_static(b"x"));
        let eff = r.handle(1, GossipWire::Publish(direct.clone()), now).expect("direct");
        assert_eq!(eff.len(), 1);
        assert!(matches!(&eff[0], Effect::Deliver { .. }));
        assert_eq!(r.stats().forwarded, 0);
        assert!(r.handle(1, GossipWire::Publish(direct), now).expect("copy").is_empty());
        assert_eq!(r.stats().duplicates, 1);
    }

    #[test]
    fn subscriptions_are_announced() {
        let mut c = core(4);
        c.add_peer(1);
        let eff = c.subscribe("a").expect("subscribe");
        assert_eq!(sends(&eff), vec![(1, GossipWire::Subscribe("a".into()))]);
        assert!(c.subscribe("a").expect("again").is_empty());
        assert!(c.is_subscribed("a"));
        c.subscribe("b").expect("subscribe");
        // A new peer gets all our subscriptions, in order.
        let eff = c.add_peer(2);
        assert_eq!(
            sends(&eff),
            vec![
                (2, GossipWire::Subscribe("a".into())),
                (2, GossipWire::Subscribe("b".into()))
            ]
        );
        let eff = c.unsubscribe("a").expect("unsubscribe");
        assert_eq!(
            sends(&eff),
            vec![
                (1, GossipWire::Unsubscribe("a".into())),
                (2, GossipWire::Unsubscribe("a".into()))
            ]
        );
        assert!(c.unsubscribe("a").expect("again").is_empty());
        assert!(!c.is_subscribed("a"));
        assert_eq!(c.subscriptions().collect::<Vec<_>>(), vec!["b"]);
    }

    #[test]
    fn peer_subscription_tracking_and_removal() {
        let now = Instant::now();
        let mut c = core(5);
        c.add_peer(7);
        c.handle(7, GossipWire::Subscribe("x".into()), now).expect("subscribe");
        assert!(c.peer_topics(&7).is_some_and(|t| t.contains("x")));
        c.handle(7, GossipWire::Unsubscribe("x".into()), now)
            .expect("unsubscribe");
        assert!(c.peer_topics(&7).is_some_and(BTreeSet::is_empty));
        c.remove_peer(&7);
        assert!(c.peer_topics(&7).is_none());
        assert!(matches!(
            c.handle(7, GossipWire::Subscribe("x".into()), now),
            Err(GossipError::UnknownPeer(_))
        ));
    }

    #[test]
    fn local_limits() {
        let now = Instant::now();
        let config = GossipConfig {
            max_topics_per_peer: 2,
            max_payload: 4,
            ..GossipConfig::default()
        };
        let mut c: Core = GossipCore::new(Bytes::from_static(b"me"), config.clone(), 0);
        c.subscribe("a").expect("a");
        c.subscribe("b").expect("b");
        assert_eq!(c.subscribe("c"), Err(GossipError::TooManyTopics { max: 2 }));
        assert_eq!(
            c.publish("a", Bytes::from_static(b"12345"), now),
            Err(GossipError::PayloadTooLarge { len: 5, max: 4 })
        );
        assert_eq!(c.stats().published, 0);
        let mut long: Core = GossipCore::new(Bytes::from(vec![0u8; 65]), config, 0);
        assert_eq!(
            long.publish("a", Bytes::new(), now),
            Err(GossipError::OriginTooLong(65))
        );
    }

    #[test]
    fn seen_cache_expires_on_tick() {
        let t0 = Instant::now();
        let mut c = core(6);
        c.add_peer(1);
        let msg = GossipWire::Publish(foreign("t", 1, 0));
        c.handle(1, msg.clone(), t0).expect("first");
        c.handle(1, msg.clone(), t0).expect("dup");
        assert_eq!(c.stats().duplicates, 1);
        c.tick(t0 + Duration::from_secs(119));
        assert_eq!(c.seen_len(), 1);
        c.tick(t0 + Duration::from_secs(120));
        assert_eq!(c.seen_len(), 0);
        c.handle(1, msg, t0 + Duration::from_secs(120)).expect("new again");
        assert_eq!(c.stats().duplicates, 1);
    }
}
