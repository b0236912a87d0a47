//! Feeds arbitrary bytes to the parsers behind a certificate's inclusion
//! proof and a witness's frontier:
//!
//! - `InclusionProof::decode`, the extension value every peer certificate
//!   carries, then `root_from_inclusion` on what it decoded (as
//!   `TrustStore::verify_certificate` does, with an arbitrary leaf);
//! - `Frontier::from_bytes`, carried in every co-sign request, then `root`
//!   and `push` on what it decoded;
//! - `Certificate::from_der` and `precertificate_of`, which take a peer's
//!   certificate apart to find the extension.
//!
//! Checks that none of them panics and that the two TrustChain encodings
//! round-trip canonically and strictly (see `check_codec`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stoq::pki::Certificate;
use trustchain::inclusion::{precertificate_of, InclusionProof};
use trustchain::log::{root_from_inclusion, Frontier};
use trustchain_fuzz::{check_codec, trace};

fuzz_target!(|data: &[u8]| {
    if let Some(proof) = check_codec("inclusion proof", data, InclusionProof::decode, InclusionProof::encode) {
        let leaf = [0x5a; 32];
        let root = root_from_inclusion(&leaf, proof.leaf_index, proof.tree_size, &proof.path);
        trace("root_from_inclusion", &root);
        let _ = proof.to_extension();
    }
    if let Some(mut frontier) = check_codec("frontier", data, Frontier::from_bytes, Frontier::to_bytes) {
        let before = frontier.root();
        frontier.push([0xa5; 32]);
        assert_ne!(frontier.root(), before, "appending a leaf left the root unchanged");
        // An encoded frontier may claim at most 2^63 leaves; one more is
        // legitimately refused.
        if frontier.size() <= 1 << 63 {
            assert_eq!(Frontier::from_bytes(&frontier.to_bytes()).as_ref(), Ok(&frontier));
        }
    }
    let cert = Certificate::from_der(data);
    trace("certificate", &cert);
    if let Ok(cert) = cert {
        let split = precertificate_of(&cert);
        trace("precertificate_of", &split);
    }
});
