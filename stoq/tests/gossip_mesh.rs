//! Gossip over a real mesh of endpoints, ordered messages and datagrams.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use stoq::gossip::{MessageId, Spread};
use stoq::Incoming;

const NODES: usize = 5;
const PER_NODE: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mesh_delivers_every_publication_exactly_once() {
    init_tracing();
    let pki = TestPki::new();
    let nodes: Vec<_> = (0..NODES).map(|i| node(&pki, &format!("node-{i}.mesh")).0).collect();
    let mut subs: Vec<_> = nodes.iter().map(|n| n.gossip().subscribe("blocks").unwrap()).collect();

    for i in 0..NODES {
        for j in i + 1..NODES {
            nodes[i]
                .connect(addr(&nodes[j]), &format!("node-{j}.mesh"))
                .await
                .unwrap();
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        wait_until(&format!("node {i} to have {} connections", NODES - 1), || {
            n.connections().len() == NODES - 1
        })
        .await;
        // Direct publications go to the peers known to subscribe.
        wait_until(&format!("node {i} to know its peers' subscriptions"), || {
            n.gossip().subscribed_peers("blocks") == NODES - 1
        })
        .await;
    }

    // Who published what.
    let mut origin_of: HashMap<MessageId, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for k in 0..PER_NODE {
            // Half relayed through the mesh, half sent straight to every
            // subscriber: both arrive exactly once.
            let spread = if k % 2 == 0 { Spread::Mesh } else { Spread::Direct };
            let id = n
                .gossip()
                .publish_with("blocks", Bytes::from(format!("block {i}/{k}")), spread)
                .unwrap();
            assert!(origin_of.insert(id, i).is_none(), "message ids are unique");
        }
    }

    let expected = (NODES - 1) * PER_NODE;
    let mut received: Vec<Vec<MessageId>> = vec![Vec::new(); NODES];
    // Await each subscriber in turn: the others' messages queue meanwhile.
    let collect = async {
        for (i, rx) in subs.iter_mut().enumerate() {
            while received[i].len() < expected {
                let m = rx.recv().await.expect("subscription open");
                let publisher = origin_of[&m.id];
                assert_ne!(publisher, i, "node {i} received its own publication");
                assert_eq!(
                    &m.origin[..],
                    &nodes[publisher].node_id().0[..],
                    "origin is the publisher's node id"
                );
                assert_eq!(m.topic, "blocks");
                assert!(String::from_utf8_lossy(&m.payload).starts_with(&format!("block {publisher}/")));
                received[i].push(m.id);
            }
        }
    };
    if tokio::time::timeout(WAIT, collect).await.is_err() {
        let counts: Vec<_> = received.iter().map(Vec::len).collect();
        panic!("gossip incomplete after {WAIT:?}: received {counts:?}, expected {expected} each");
    }

    // Nothing more may arrive: no duplicates. Proving an absence needs a
    // quiet window; 300 ms is many round trips on [::1].
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, rx) in subs.iter_mut().enumerate() {
        while let Ok(m) = rx.try_recv() {
            received[i].push(m.id);
        }
    }
    for (i, ids) in received.iter().enumerate() {
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "node {i} received duplicates");
        assert_eq!(ids.len(), expected, "node {i}");
        let from_others: HashSet<_> = origin_of.iter().filter(|(_, &p)| p != i).map(|(id, _)| id).collect();
        assert_eq!(
            unique, from_others,
            "node {i} received exactly the others' publications"
        );
    }
    for n in &nodes {
        let (_, dropped) = n.gossip().stats();
        assert_eq!(dropped, 0, "no gossip dropped at full queues");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_in_order_and_datagrams_arrive() {
    init_tracing();
    let pki = TestPki::new();
    let (server, _) = node(&pki, "node-b.mesh");
    let (client, client_id) = node(&pki, "node-a.mesh");
    let mut incoming = server.take_incoming().unwrap();
    assert!(server.take_incoming().is_none(), "the receiver is taken once");

    let conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();
    const N: u32 = 500;
    for i in 0..N {
        conn.send_message(Bytes::from(i.to_be_bytes().to_vec())).await.unwrap();
    }
    let mut next = 0u32;
    within("all messages", async {
        while next < N {
            match incoming.recv().await.unwrap() {
                Incoming::Message { from, payload } => {
                    assert_eq!(from.node_id(), client_id.key.node_id());
                    assert_eq!(
                        u32::from_be_bytes(payload[..].try_into().unwrap()),
                        next,
                        "messages in order"
                    );
                    next += 1;
                }
                Incoming::Datagram { .. } => panic!("no datagram was sent yet"),
            }
        }
    })
    .await;
    assert_eq!(server.metrics().messages_received.get(), u64::from(N));

    // Oversized messages are refused locally.
    let too_big = Bytes::from(vec![0u8; client.config().limits.max_frame_len + 1]);
    assert!(matches!(conn.send_message(too_big).await, Err(stoq::Error::Frame(_))));

    // Datagrams may be lost: resend until one arrives.
    let payload = Bytes::from_static(b"datagram!");
    within("a datagram", async {
        loop {
            conn.send_datagram(payload.clone()).unwrap();
            match tokio::time::timeout(Duration::from_millis(200), incoming.recv()).await {
                Ok(Some(Incoming::Datagram { from, payload: got })) => {
                    assert_eq!(from.node_id(), client_id.key.node_id());
                    assert_eq!(got, payload);
                    break;
                }
                Ok(Some(Incoming::Message { .. })) => panic!("unexpected message"),
                Ok(None) => panic!("incoming channel closed"),
                Err(_) => continue,
            }
        }
    })
    .await;
    assert!(server.metrics().datagrams_received.get() >= 1);
}
