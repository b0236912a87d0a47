//! Feeds arbitrary bytes to the decoders of the member RPC messages in
//! `trustchain::messages`; the first input byte (modulo 9) picks the decoder
//! and the rest is its input:
//!
//! | byte | decoder                         | RPC                   |
//! |------|---------------------------------|-----------------------|
//! | 0    | `SyncRequest::decode`           | `tc.sync` request     |
//! | 1    | `SyncResponse::decode`          | `tc.sync` response    |
//! | 2    | `ProofRequest::decode`          | `tc.log.proof`        |
//! | 3    | `CosignReply::decode`           | `tc.cosign` response  |
//! | 4    | `TokenCreate::decode`           | `tc.token.create`     |
//! | 5    | `Issued::decode`                | `tc.enroll`/`tc.renew` response |
//! | 6    | `decode_entries`                | `tc.log.entries` response |
//! | 7    | `decode_hashes`                 | `tc.log.proof` response |
//! | 8    | `decode_range`                  | `tc.log.entries` request |
//!
//! Checks that no decoder panics and that whatever they accept round-trips
//! canonically and strictly (see `check_codec`). The one known exception is
//! a `CosignReply` verdict whose reason is not UTF-8: it is decoded lossily,
//! so it only has to round-trip as long as the lossy reason still fits the
//! 1,024-byte limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustchain::messages::{
    decode_entries, decode_hashes, decode_range, encode_entries, encode_hashes, encode_range, CosignReply, Issued,
    ProofRequest, SyncRequest, SyncResponse, TokenCreate,
};
use trustchain_fuzz::{check_codec, check_strict, trace};

/// The longest verdict reason `CosignReply::decode` accepts.
const MAX_REASON_LEN: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 9 {
        0 => {
            check_codec("sync request", body, SyncRequest::decode, SyncRequest::encode);
        }
        1 => {
            check_codec("sync response", body, SyncResponse::decode, SyncResponse::encode);
        }
        2 => {
            check_codec("proof request", body, ProofRequest::decode, ProofRequest::encode);
        }
        3 => cosign_reply(body),
        4 => {
            check_codec("token request", body, TokenCreate::decode, TokenCreate::encode);
        }
        5 => {
            check_codec("issuance response", body, Issued::decode, Issued::encode);
        }
        6 => {
            check_codec("log entries", body, decode_entries, |e| encode_entries(e));
        }
        7 => {
            check_codec("proof", body, decode_hashes, |h| encode_hashes(h));
        }
        _ => {
            check_codec("range", body, decode_range, |&(start, end)| encode_range(start, end));
        }
    }
});

fn cosign_reply(body: &[u8]) {
    let decoded = CosignReply::decode(body);
    let lossy = matches!(&decoded, Ok(CosignReply::Verdicts(v)) if v.iter().any(|(_, _, r)| r.contains('\u{FFFD}')));
    if !lossy {
        check_codec("co-sign reply", body, CosignReply::decode, CosignReply::encode);
        return;
    }
    trace("co-sign reply (lossy reasons)", &decoded);
    let Ok(reply) = decoded else { return };
    check_strict("co-sign reply", body, &CosignReply::decode);
    let fits = matches!(&reply, CosignReply::Verdicts(v) if v.iter().all(|(_, _, r)| r.len() <= MAX_REASON_LEN));
    if fits {
        assert_eq!(
            CosignReply::decode(&reply.encode()).as_ref(),
            Ok(&reply),
            "co-sign reply: decode(encode(x)) != x"
        );
    }
}
