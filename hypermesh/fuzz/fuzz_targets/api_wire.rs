//! Feeds arbitrary bytes to the decoders of the node API's STOQ messages:
//! the requests a node parses from any client (it serves them to clients
//! that are not enrolled) and the answers a client parses from a node. The
//! first input byte picks the decoder.
//!
//! Checks that no decoder panics or allocates past its limits, and that
//! every request a node accepts re-encodes to exactly the same bytes (one
//! encoding per request, so nothing a client sends is read two ways).
#![no_main]

use bytes::Bytes;
use hypermesh::api::wire::{self, BlocksRequest, EventsRequest, ProveRequest, QueryRequest};
use hypermesh::chain::CommitCertificate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 20 {
        // Requests: what a node parses.
        0 => {
            if let Ok(txs) = wire::decode_submit(&Bytes::copy_from_slice(body)) {
                assert_eq!(wire::encode_submit(&txs).expect("re-encodes"), body);
            }
        }
        1 => {
            if let Ok(at) = wire::decode_block_ref(body) {
                assert_eq!(wire::encode_block_ref(&at), body);
            }
        }
        2 => {
            if let Ok(h) = wire::decode_height(body) {
                assert_eq!(wire::encode_height(h), body);
            }
        }
        3 => {
            if let Ok(h) = wire::decode_hash(body) {
                assert_eq!(wire::encode_hash(&h), body);
            }
        }
        4 => {
            if let Ok(q) = QueryRequest::decode(body) {
                assert_eq!(q.encode().expect("re-encodes"), body);
            }
        }
        5 => {
            if let Ok(p) = ProveRequest::decode(body) {
                assert_eq!(p.encode().expect("re-encodes"), body);
            }
        }
        6 => {
            if let Ok(b) = BlocksRequest::decode(body) {
                assert_eq!(b.encode(), body);
            }
        }
        7 => {
            if let Ok(e) = EventsRequest::decode(body) {
                assert_eq!(e.encode().expect("re-encodes"), body);
            }
        }
        8 => {
            let _ = wire::decode_empty(body);
        }
        // Answers: what a client parses.
        9 => {
            let _ = wire::decode_submit_results(body);
        }
        10 => {
            let _ = wire::decode_status(body);
        }
        11 => {
            let _ = wire::decode_block_answer(body);
        }
        12 => {
            let _ = wire::decode_receipts(body);
        }
        13 => {
            let _ = wire::decode_tx_status(body);
        }
        14 => {
            let _ = wire::decode_account_info(body);
        }
        15 => {
            let _ = wire::decode_query_answer(body);
        }
        16 => {
            let _ = wire::decode_proof(body);
        }
        17 => {
            let _ = wire::decode_blocks(body);
        }
        18 => {
            let _ = wire::decode_events(body);
        }
        // Commit certificates travel inside blocks from peers.
        _ => {
            if let Ok(c) = CommitCertificate::decode(body) {
                assert_eq!(c.encode().expect("re-encodes"), body);
            }
        }
    }
});
