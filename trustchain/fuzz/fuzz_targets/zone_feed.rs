//! Feeds arbitrary bytes to the decoders of `tc.zone.feed`, which members
//! call on each other to replicate their zones; the first input byte
//! (modulo 2) picks the decoder and the rest is its input:
//!
//! | byte | decoder                     | read by                              |
//! |------|-----------------------------|--------------------------------------|
//! | 0    | `ZoneFeedRequest::decode`   | the member serving its feed          |
//! | 1    | `ZoneFeedResponse::decode`  | the member pulling another's feed    |
//!
//! Checks that neither decoder panics, that whatever they accept
//! round-trips canonically and strictly (see `check_codec`), and that an
//! accepted value keeps the promises the puller relies on: a request's
//! range does not end before it starts; a response carries at most
//! `MAX_PAGE` entries, by strictly increasing index, all below `next`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustchain::messages::{ZoneFeedRequest, ZoneFeedResponse, MAX_PAGE};
use trustchain_fuzz::check_codec;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        if let Some(req) = check_codec(
            "zone feed request",
            body,
            ZoneFeedRequest::decode,
            ZoneFeedRequest::encode,
        ) {
            assert!(req.from <= req.until, "zone feed request: accepted {req:?}");
        }
    } else if let Some(resp) = check_codec(
        "zone feed response",
        body,
        ZoneFeedResponse::decode,
        ZoneFeedResponse::encode,
    ) {
        assert!(
            resp.entries.len() <= MAX_PAGE,
            "zone feed response: {} entries",
            resp.entries.len()
        );
        assert!(
            resp.entries.windows(2).all(|w| w[0].index < w[1].index),
            "zone feed response: indexes not strictly increasing"
        );
        assert!(
            resp.entries.iter().all(|e| e.index < resp.next),
            "zone feed response: an entry at or past next = {}",
            resp.next
        );
    }
});
