//! Feeds arbitrary bytes to `EnrollmentToken::decode` (the binary form, also
//! carried inside enrollment requests) and, when they are UTF-8, to
//! `EnrollmentToken::from_text` (the `tct1.<base64url>` form an operator
//! pastes).
//!
//! Checks that neither parser panics, that the binary form round-trips
//! canonically and strictly (see `check_codec`), and that an accepted text
//! form is the canonical text of the token it decodes to, up to the
//! surrounding whitespace `from_text` trims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustchain::token::EnrollmentToken;
use trustchain_fuzz::{check_codec, trace};

fuzz_target!(|data: &[u8]| {
    if let Some(token) = check_codec(
        "enrollment token",
        data,
        EnrollmentToken::decode,
        EnrollmentToken::encode,
    ) {
        assert_eq!(EnrollmentToken::from_text(&token.to_text()).as_ref(), Ok(&token));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = EnrollmentToken::from_text(text);
    trace("enrollment token text", &parsed);
    if let Ok(token) = parsed {
        assert_eq!(token.to_text(), text.trim(), "a second text form of one token");
        assert_eq!(EnrollmentToken::decode(&token.encode()).as_ref(), Ok(&token));
        for name in &token.body.names {
            assert!(token.allows(name), "a token does not allow its own pattern {name:?}");
        }
    }
});
