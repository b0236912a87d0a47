//! Feeds arbitrary bytes to `RevocationRequest::decode` (the public
//! `tc.revoke` RPC, and batches being co-signed) and to
//! `SignedRevocation::decode` (gossip and `tc.sync`).
//!
//! Checks that neither decoder panics and that whatever they accept
//! round-trips canonically and strictly (see `check_codec`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustchain::revocation::{RevocationRequest, SignedRevocation};
use trustchain_fuzz::check_codec;

fuzz_target!(|data: &[u8]| {
    if let Some(req) = check_codec(
        "revocation request",
        data,
        RevocationRequest::decode,
        RevocationRequest::encode,
    ) {
        let _ = req.statement.log_entry();
    }
    if let Some(rev) = check_codec(
        "signed revocation",
        data,
        SignedRevocation::decode,
        SignedRevocation::encode,
    ) {
        let _ = rev.statement.log_entry();
    }
});
