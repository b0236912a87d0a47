//! Feeds arbitrary bytes to `Checkpoint::decode` (gossip, `tc.sync`,
//! issuance responses) and to `CheckpointBody::decode`.
//!
//! Checks that neither decoder panics and that whatever they accept
//! round-trips canonically and strictly (see `check_codec`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustchain::checkpoint::{Checkpoint, CheckpointBody};
use trustchain_fuzz::check_codec;

fuzz_target!(|data: &[u8]| {
    if let Some(cp) = check_codec("checkpoint", data, Checkpoint::decode, Checkpoint::encode) {
        let _ = cp.body.batch_len();
        let _ = cp.body.signed_bytes();
    }
    if let Some(body) = check_codec("checkpoint body", data, CheckpointBody::decode, CheckpointBody::encode) {
        let _ = body.batch_len();
        let _ = body.signed_bytes();
    }
});
