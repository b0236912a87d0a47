//! Feeds arbitrary bytes to the witness side of `tc.cosign`: the first byte
//! is the mode (check or sign), the rest goes to `CosignRequest::decode`.
//!
//! Checks that the decoder never panics, that whatever it accepts
//! round-trips canonically and strictly (see `check_codec`), and that the
//! structural witness check the handler runs next (`check_extension`, with no
//! previous head and with one at the request's `consistency_from`) never
//! panics on a decoded request either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustchain::witness::{check_extension, CosignRequest, Head};
use trustchain_fuzz::{check_codec, debug_enabled};

/// The co-sign modes of `member::pipeline` (crate-private there).
const MODE_CHECK: u8 = 1;
const MODE_SIGN: u8 = 2;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    // The handler refuses other modes before decoding anything.
    if mode != MODE_CHECK && mode != MODE_SIGN {
        return;
    }
    let Some(req) = check_codec("co-sign request", body, CosignRequest::decode, CosignRequest::encode) else {
        return;
    };
    for item in &req.items {
        let _ = item.log_entry();
    }
    let fresh = check_extension(None, &req);
    let last = Head {
        size: req.consistency_from,
        root: req.body.batch_root,
        timestamp_ms: req.body.timestamp_ms,
    };
    let after = check_extension(Some(&last), &req);
    if debug_enabled() {
        eprintln!("check_extension(None): {fresh:?}\ncheck_extension({last:?}): {after:?}");
    }
});
