//! Feeds arbitrary bytes to the decoders of chain data that arrives from
//! the network (transactions submitted to a node, blocks and headers from
//! peers); the first input byte (modulo 3) picks the decoder:
//!
//! | byte | decoder                 |
//! |------|-------------------------|
//! | 0    | `Transaction::decode`   |
//! | 1    | `BlockHeader::decode`   |
//! | 2    | `Block::decode`         |
//!
//! Checks that no decoder panics, that whatever they accept round-trips to
//! exactly the same bytes and is refused once cut or extended (see
//! `trustchain_fuzz::check_codec`), and that accepted values respect the
//! limits: a block holds at most `MAX_BLOCK_TXS` transactions. The
//! admission decoder (`Transaction::decode_shared`, which keeps the
//! signature as a slice of the received buffer) must agree with the
//! copying one on every input, sighash included.
#![no_main]

use hypermesh::types::MAX_BLOCK_TXS;
use hypermesh::{Block, BlockHeader, Transaction};
use libfuzzer_sys::fuzz_target;
use trustchain_fuzz::check_codec;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            check_codec("transaction", body, Transaction::decode, |t| {
                t.encode().expect("a decoded transaction re-encodes")
            });
            let shared = bytes::Bytes::copy_from_slice(body);
            match (Transaction::decode_with_sighash(body), Transaction::decode_shared(&shared, None)) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "the admission decoder agrees"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("decoders disagree: {a:?} vs {b:?}"),
            }
        }
        1 => {
            check_codec("block header", body, BlockHeader::decode, |h| {
                h.encode().expect("a decoded header re-encodes")
            });
        }
        _ => {
            if let Some(block) = check_codec("block", body, Block::decode, |b| {
                b.encode().expect("a decoded block re-encodes")
            }) {
                assert!(block.txs.len() <= MAX_BLOCK_TXS);
            }
        }
    }
});
