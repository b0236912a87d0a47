//! Deterministic simulation of a gossip mesh (tests only).
//!
//! N cores exchange messages over an in-memory network driven by virtual
//! time: a priority queue of events ordered by (time, sequence number), a
//! seeded RNG for per-link latency and jitter, optional drops, duplicated
//! deliveries and partitioned links. Every message is encoded to bytes and
//! decoded again on every hop, so the codec is exercised end to end.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Effect, GossipConfig, GossipCore, GossipError, GossipWire, MessageId, Publish};

type Core = GossipCore<usize>;
const TOPIC: &str = "blocks";

/// Network behaviour.
#[derive(Clone)]
struct NetConfig {
    /// Range of the base latency of a link, drawn when it is connected.
    base_latency_ms: (u64, u64),
    /// Extra per-message latency, drawn for each message.
    jitter_ms: u64,
    /// Probability that a message is lost.
    drop_prob: f64,
    /// Deliver every message twice (with independent latencies).
    duplicate: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            base_latency_ms: (1, 50),
            jitter_ms: 10,
            drop_prob: 0.0,
            duplicate: false,
        }
    }
}

enum EventKind {
    Message { from: usize, to: usize, bytes: Bytes },
    Publish { node: usize, payload: Bytes },
}

struct Event {
    at: Duration,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Sim {
    nodes: Vec<Core>,
    origins: Vec<Bytes>,
    /// Base latency of each link, keyed by (min, max) node index.
    links: BTreeMap<(usize, usize), Duration>,
    partitioned: BTreeSet<(usize, usize)>,
    subscribed: BTreeSet<usize>,
    queue: BinaryHeap<Reverse<Event>>,
    next_seq: u64,
    rng: StdRng,
    start: Instant,
    now: Duration,
    net: NetConfig,
    /// (virtual time, node, id) of every local delivery, in order.
    trace: Vec<(Duration, usize, MessageId)>,
    /// Publications: id -> (publishing node, payload).
    published: BTreeMap<MessageId, (usize, Bytes)>,
    wire_messages: u64,
}

fn link(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Sim {
    fn new(n: usize, seed: u64, config: GossipConfig, net: NetConfig) -> Self {
        let origins: Vec<Bytes> = (0..n)
            .map(|i| Bytes::from(MessageId::compute("node", &[], i as u64, &[]).0.to_vec()))
            .collect();
        let nodes = origins
            .iter()
            .enumerate()
            .map(|(i, o)| {
                GossipCore::new(
                    o.clone(),
                    config.clone(),
                    seed.wrapping_mul(1_000).wrapping_add(i as u64),
                )
            })
            .collect();
        Self {
            nodes,
            origins,
            links: BTreeMap::new(),
            partitioned: BTreeSet::new(),
            subscribed: BTreeSet::new(),
            queue: BinaryHeap::new(),
            next_seq: 0,
            rng: StdRng::seed_from_u64(seed),
            start: Instant::now(),
            now: Duration::ZERO,
            net,
            trace: Vec::new(),
            published: BTreeMap::new(),
            wire_messages: 0,
        }
    }

    fn instant(&self) -> Instant {
        self.start + self.now
    }

    fn schedule(&mut self, at: Duration, kind: EventKind) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse(Event { at, seq, kind }));
    }

    fn connect(&mut self, a: usize, b: usize) {
        let (lo, hi) = self.net.base_latency_ms;
        let base = Duration::from_millis(self.rng.gen_range(lo..=hi));
        self.links.insert(link(a, b), base);
        let eff = self.nodes[a].add_peer(b);
        self.dispatch(a, eff);
        let eff = self.nodes[b].add_peer(a);
        self.dispatch(b, eff);
    }

    fn full_mesh(&mut self) {
        let n = self.nodes.len();
        for a in 0..n {
            for b in a + 1..n {
                self.connect(a, b);
            }
        }
    }

    fn line(&mut self) {
        for a in 1..self.nodes.len() {
            self.connect(a - 1, a);
        }
    }

    fn ring(&mut self) {
        self.line();
        self.connect(self.nodes.len() - 1, 0);
    }

    fn subscribe(&mut self, node: usize) {
        let eff = self.nodes[node].subscribe(TOPIC).expect("subscribe");
        self.subscribed.insert(node);
        self.dispatch(node, eff);
    }

    fn partition(&mut self, a: usize, b: usize) {
        self.partitioned.insert(link(a, b));
    }

    /// Every node publishes `per_node` messages at random times in
    /// [100 ms, 2.1 s).
    fn schedule_publications(&mut self, per_node: usize) {
        for node in 0..self.nodes.len() {
            for k in 0..per_node {
                let at = Duration::from_millis(100 + self.rng.gen_range(0..2_000));
                let payload = Bytes::from(format!("node {node} message {k}"));
                self.schedule(at, EventKind::Publish { node, payload });
            }
        }
    }

    fn dispatch(&mut self, node: usize, effects: Vec<Effect<usize>>) {
        for e in effects {
            match e {
                Effect::Send { to, msg } => {
                    let base = *self.links.get(&link(node, to)).expect("send only to a connected peer");
                    let mut buf = BytesMut::new();
                    msg.encode(&mut buf).expect("core emits valid messages");
                    let bytes = buf.freeze();
                    if self.partitioned.contains(&link(node, to)) {
                        continue;
                    }
                    let copies = if self.net.duplicate { 2 } else { 1 };
                    for _ in 0..copies {
                        if self.net.drop_prob > 0.0 && self.rng.gen_bool(self.net.drop_prob) {
                            continue;
                        }
                        let jitter = Duration::from_millis(self.rng.gen_range(0..=self.net.jitter_ms));
                        let at = self.now + base + jitter;
                        let kind = EventKind::Message {
                            from: node,
                            to,
                            bytes: bytes.clone(),
                        };
                        self.schedule(at, kind);
                    }
                }
                Effect::Deliver {
                    topic,
                    id,
                    origin,
                    payload,
                } => {
                    assert_eq!(topic, TOPIC);
                    assert!(self.subscribed.contains(&node), "delivered to non-subscriber");
                    let (publisher, sent) = self.published.get(&id).expect("delivered unknown id");
                    assert_eq!(origin, self.origins[*publisher]);
                    assert_eq!(&payload, sent);
                    self.trace.push((self.now, node, id));
                }
            }
        }
    }

    fn run(&mut self) {
        let mut steps = 0u64;
        while let Some(Reverse(ev)) = self.queue.pop() {
            steps += 1;
            assert!(steps < 2_000_000, "simulation does not converge");
            assert!(ev.at >= self.now, "time went backwards");
            self.now = ev.at;
            let now = self.instant();
            match ev.kind {
                EventKind::Message { from, to, bytes } => {
                    self.wire_messages += 1;
                    let msg = GossipWire::decode(bytes).expect("decode");
                    self.nodes[to].tick(now);
                    let eff = self.nodes[to].handle(from, msg, now).expect("handle");
                    self.dispatch(to, eff);
                }
                EventKind::Publish { node, payload } => {
                    let (id, eff) = self.nodes[node].publish(TOPIC, payload.clone(), now).expect("publish");
                    assert!(self.published.insert(id, (node, payload)).is_none());
                    self.dispatch(node, eff);
                }
            }
        }
    }

    fn delivery_counts(&self) -> BTreeMap<(usize, MessageId), usize> {
        let mut counts = BTreeMap::new();
        for (_, node, id) in &self.trace {
            *counts.entry((*node, *id)).or_insert(0) += 1;
        }
        counts
    }

    /// Every subscriber other than the publisher delivered every publication
    /// exactly once; nobody else delivered it.
    fn assert_exactly_once(&self) {
        let counts = self.delivery_counts();
        assert!(!self.published.is_empty());
        for (id, (publisher, _)) in &self.published {
            for node in 0..self.nodes.len() {
                let got = counts.get(&(node, *id)).copied().unwrap_or(0);
                let want = usize::from(node != *publisher && self.subscribed.contains(&node));
                assert_eq!(got, want, "node {node}, {id:?} from node {publisher}");
            }
        }
        let expected: usize = self
            .published
            .values()
            .map(|(p, _)| self.subscribed.iter().filter(|s| *s != p).count())
            .sum();
        assert_eq!(self.trace.len(), expected);
        let delivered: u64 = self.nodes.iter().map(|n| n.stats().delivered).sum();
        assert_eq!(delivered as usize, expected);
    }

    fn total_duplicates(&self) -> u64 {
        self.nodes.iter().map(|n| n.stats().duplicates).sum()
    }
}

fn mesh_scenario(seed: u64, subscribers: &[usize], net: NetConfig) -> Sim {
    let mut sim = Sim::new(5, seed, GossipConfig::default(), net);
    sim.full_mesh();
    for &s in subscribers {
        sim.subscribe(s);
    }
    sim.schedule_publications(20);
    sim.run();
    sim
}

#[test]
fn full_mesh_all_subscribed_exactly_once() {
    let sim = mesh_scenario(1, &[0, 1, 2, 3, 4], NetConfig::default());
    assert_eq!(sim.published.len(), 100);
    sim.assert_exactly_once();
    assert_eq!(sim.trace.len(), 100 * 4);
    for (i, n) in sim.nodes.iter().enumerate() {
        assert_eq!(n.stats().published, 20);
        // Never delivers its own publications.
        assert!(sim
            .trace
            .iter()
            .filter(|(_, node, _)| *node == i)
            .all(|(_, _, id)| sim.published[id].0 != i));
    }
}

#[test]
fn full_mesh_some_subscribed_only_subscribers_deliver() {
    let sim = mesh_scenario(2, &[0, 2, 4], NetConfig::default());
    sim.assert_exactly_once();
    for n in [1, 3] {
        assert_eq!(sim.nodes[n].stats().delivered, 0);
        assert!(sim.nodes[n].stats().forwarded > 0, "non-subscribers relay");
    }
    // 3 subscribers; each message reaches the 3 (or 2 if self-published).
    assert_eq!(sim.trace.len(), 40 * 3 + 60 * 2);
}

fn sparse_config() -> GossipConfig {
    GossipConfig {
        fanout: 2,
        ..GossipConfig::default()
    }
}

#[test]
fn sparse_ring_of_8_fanout_2() {
    for seed in 0..5 {
        let mut sim = Sim::new(8, seed, sparse_config(), NetConfig::default());
        sim.ring();
        for s in [0, 2, 3, 5, 6] {
            sim.subscribe(s);
        }
        sim.schedule_publications(10);
        sim.run();
        sim.assert_exactly_once();
        // Nodes 1, 4 and 7 relay without being subscribed.
        assert!(sim.nodes[1].stats().forwarded > 0 && sim.nodes[7].stats().forwarded > 0);
    }
}

#[test]
fn sparse_line_of_6_fanout_2() {
    for seed in 0..5 {
        let mut sim = Sim::new(6, seed, sparse_config(), NetConfig::default());
        sim.line();
        // The two ends (distance 5) and one middle node.
        for s in [0, 2, 5] {
            sim.subscribe(s);
        }
        sim.schedule_publications(10);
        sim.run();
        sim.assert_exactly_once();
        // A line has a single path: no duplicates at all.
        assert_eq!(sim.total_duplicates(), 0);
    }
}

#[test]
fn partitioned_link_in_ring_still_delivers_via_the_other_way() {
    let mut sim = Sim::new(8, 9, sparse_config(), NetConfig::default());
    sim.ring();
    for s in 0..8 {
        sim.subscribe(s);
    }
    // The ring becomes a line 1-2-...-7-0 (distance up to 7, hops 6 < 8).
    sim.partition(0, 1);
    sim.schedule_publications(5);
    sim.run();
    sim.assert_exactly_once();
}

#[test]
fn partitioned_line_splits_the_mesh() {
    let mut sim = Sim::new(6, 10, sparse_config(), NetConfig::default());
    sim.line();
    for s in 0..6 {
        sim.subscribe(s);
    }
    sim.partition(2, 3);
    sim.schedule_publications(5);
    sim.run();
    let counts = sim.delivery_counts();
    assert!(counts.values().all(|&c| c == 1));
    for (id, (publisher, _)) in &sim.published {
        for node in 0..6 {
            let same_side = (node < 3) == (*publisher < 3);
            let want = usize::from(same_side && node != *publisher);
            assert_eq!(counts.get(&(node, *id)).copied().unwrap_or(0), want);
        }
    }
}

#[test]
fn duplicated_network_still_delivers_exactly_once() {
    let net = NetConfig {
        duplicate: true,
        ..NetConfig::default()
    };
    let sim = mesh_scenario(3, &[0, 1, 2, 3, 4], net);
    sim.assert_exactly_once();
    assert!(sim.total_duplicates() > 0);
    // Every wire copy is either the first sighting or a counted duplicate.
    let first_sightings: u64 = sim.nodes.iter().map(|n| n.seen_len() as u64).sum::<u64>()
        - sim.nodes.iter().map(|n| n.stats().published).sum::<u64>();
    let subscribe_msgs = (5 * 4) * 2; // one Subscribe per ordered pair, sent twice
    assert_eq!(
        sim.wire_messages,
        first_sightings + sim.total_duplicates() + subscribe_msgs
    );
}

#[test]
fn lossy_network_delivers_at_most_once() {
    let net = NetConfig {
        drop_prob: 0.2,
        ..NetConfig::default()
    };
    let sim = mesh_scenario(4, &[0, 1, 2, 3, 4], net);
    let counts = sim.delivery_counts();
    assert!(counts.values().all(|&c| c == 1));
    // Flooding over 4 paths masks most losses.
    assert!(sim.trace.len() >= 400 * 9 / 10, "{}", sim.trace.len());
}

#[test]
fn same_seed_same_trace_different_seed_different_trace() {
    let trace = |seed| mesh_scenario(seed, &[0, 1, 2, 3, 4], NetConfig::default()).trace;
    let ids = |t: &[(Duration, usize, MessageId)]| -> Vec<(usize, MessageId)> {
        t.iter().map(|(_, n, id)| (*n, *id)).collect()
    };
    let a = trace(42);
    let b = trace(42);
    assert_eq!(a, b);
    let c = trace(43);
    assert_ne!(ids(&a), ids(&c));
    // Peer selection alone (fixed network seed) is also reproducible.
    let mut ra = Sim::new(20, 7, GossipConfig::default(), NetConfig::default());
    let mut rb = Sim::new(20, 7, GossipConfig::default(), NetConfig::default());
    for s in [&mut ra, &mut rb] {
        s.full_mesh();
        s.subscribe(0);
        s.schedule_publications(2);
        s.run();
    }
    assert_eq!(ra.trace, rb.trace);
    assert_eq!(ra.wire_messages, rb.wire_messages);
}

/// Everything observable about a core's state.
fn snapshot(c: &Core) -> String {
    format!("{c:?}")
}

#[test]
fn hostile_input_is_refused_with_distinct_errors_and_no_state_change() {
    let now = Instant::now();
    let config = GossipConfig {
        max_topics_per_peer: 3,
        max_payload: 1024,
        ..GossipConfig::default()
    };
    let mut c: Core = GossipCore::new(Bytes::from_static(b"victim"), config, 0);
    c.add_peer(1);
    c.add_peer(2);
    c.subscribe(TOPIC).expect("subscribe");
    for t in ["a", "b", "c"] {
        c.handle(1, GossipWire::Subscribe(t.into()), now).expect("within limit");
    }
    let genuine = Publish::new(
        TOPIC.into(),
        Bytes::from_static(b"honest"),
        7,
        Bytes::from_static(b"real"),
    );
    let mut errors: Vec<GossipError> = Vec::new();
    let before = snapshot(&c);

    // 1. Forged id: the attacker claims the genuine id for other content.
    let mut forged = genuine.clone();
    forged.payload = Bytes::from_static(b"evil");
    let forged_bytes = GossipWire::Publish(forged.clone()).to_bytes().expect("encode");
    assert!(matches!(GossipWire::decode(forged_bytes), Ok(GossipWire::Publish(_))));
    errors.push(
        c.handle(2, GossipWire::Publish(forged), now)
            .expect_err("must be refused"),
    );
    assert_eq!(snapshot(&c), before);
    assert!(!c.has_seen(&genuine.id));

    // 2. Oversized topic.
    let long = "t".repeat(256);
    assert_eq!(
        GossipWire::Subscribe(long.clone()).to_bytes(),
        Err(GossipError::TopicTooLong(256))
    );
    assert_eq!(c.subscribe(&long), Err(GossipError::TopicTooLong(256)));
    errors.push(
        c.handle(2, GossipWire::Subscribe(long), now)
            .expect_err("must be refused"),
    );
    assert_eq!(snapshot(&c), before);

    // 3-6. Codec-level garbage (refused before reaching the core).
    let mut wire_errors = vec![
        GossipWire::decode(Bytes::from_static(&[0x02, 1, 2, 0xff, 0xfe])),
        GossipWire::decode(Bytes::from_static(&[0x01, 1, 0, 0, 0])),
        GossipWire::decode(Bytes::from_static(&[0x02, 1, 1, b'x', b'!'])),
        GossipWire::decode(Bytes::from_static(&[0xee, 1, 1, b'x'])),
    ]
    .into_iter()
    .map(|r| r.expect_err("must be refused"))
    .collect::<Vec<_>>();
    assert!(matches!(wire_errors[0], GossipError::TopicNotUtf8));
    assert!(matches!(wire_errors[1], GossipError::Truncated(_)));
    assert!(matches!(wire_errors[2], GossipError::TrailingBytes(1)));
    assert!(matches!(wire_errors[3], GossipError::UnknownTag(0xee)));

    // 7. Unknown peer, even with a valid message.
    errors.push(
        c.handle(99, GossipWire::Publish(genuine.clone()), now)
            .expect_err("must be refused"),
    );
    assert_eq!(snapshot(&c), before);
    assert!(!c.has_seen(&genuine.id));

    // 8. Too many subscriptions from one peer (re-announcing one is fine).
    errors.push(
        c.handle(1, GossipWire::Subscribe("d".into()), now)
            .expect_err("must be refused"),
    );
    assert_eq!(snapshot(&c), before);
    c.handle(1, GossipWire::Subscribe("a".into()), now)
        .expect("already subscribed");
    assert_eq!(c.peer_topics(&1).map(BTreeSet::len), Some(3));

    // 9. Oversized payload.
    let big = Publish::new(
        TOPIC.into(),
        Bytes::from_static(b"honest"),
        8,
        Bytes::from(vec![0u8; 1025]),
    );
    errors.push(c.handle(2, GossipWire::Publish(big), now).expect_err("must be refused"));
    assert_eq!(snapshot(&c), before);

    // 10. Control character in a topic given to the core directly.
    errors.push(
        c.handle(2, GossipWire::Unsubscribe("a\u{7}".into()), now)
            .expect_err("must be refused"),
    );
    assert_eq!(snapshot(&c), before);

    // All distinct kinds of error.
    errors.append(&mut wire_errors);
    let kinds: BTreeSet<String> = errors
        .iter()
        .map(|e| format!("{:?}", std::mem::discriminant(e)))
        .collect();
    assert_eq!(kinds.len(), errors.len(), "{errors:?}");
    assert_eq!(errors.len(), 10);

    // The cache was not poisoned: the genuine publication is delivered.
    let eff = c.handle(2, GossipWire::Publish(genuine.clone()), now).expect("genuine");
    assert!(eff
        .iter()
        .any(|e| matches!(e, Effect::Deliver { id, .. } if *id == genuine.id)));
    assert_eq!(c.stats().delivered, 1);
    assert_eq!(c.stats().duplicates, 0);
}
