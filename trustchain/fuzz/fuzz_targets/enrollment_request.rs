//! Feeds arbitrary bytes to `EnrollmentRequest::decode`, the body of the
//! public `tc.enroll` and `tc.renew` RPCs.
//!
//! Checks that the decoder never panics, and that whatever it accepts
//! re-encodes to exactly the input (one encoding per value), decodes again
//! to the same value, and stops decoding when cut short or extended by a
//! byte. A decoded token must also survive its text form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustchain::request::{Authorization, EnrollmentRequest};
use trustchain::token::EnrollmentToken;
use trustchain_fuzz::check_codec;

fuzz_target!(|data: &[u8]| {
    let Some(req) = check_codec(
        "enrollment request",
        data,
        EnrollmentRequest::decode,
        EnrollmentRequest::encode,
    ) else {
        return;
    };
    // What the member computes from a request before any signature check.
    let _ = req.body.pop_bytes();
    let _ = req.body.renewal_bytes();
    if let Authorization::Token(token) = &req.auth {
        assert_eq!(EnrollmentToken::from_text(&token.to_text()).as_ref(), Ok(token));
        for name in &req.body.names {
            let _ = token.allows(name);
        }
    }
});
