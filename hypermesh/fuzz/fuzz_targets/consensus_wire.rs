//! Feeds arbitrary bytes to the decoders of the consensus wire encoding
//! (`hypermesh::consensus::wire`); the first input byte (modulo 3) picks
//! the decoder:
//!
//! | byte | decoder            | what it reads                                     |
//! |------|--------------------|---------------------------------------------------|
//! | 0    | `decode_message`   | what validators send each other                   |
//! | 1    | `decode_wal_entry` | the write-ahead log a restarted validator replays |
//! | 2    | `decode_evidence`  | equivocation evidence, gossiped and in blocks     |
//!
//! Checks that no decoder panics, and that whatever one accepts
//! re-encodes to exactly the same bytes, decodes again to the same value
//! and is refused once cut or extended (`trustchain_fuzz::check_codec`).
//! Accepted values respect the limits: certificates hold at most
//! `MAX_CERTIFICATE_SIGNATURES` signatures.
#![no_main]

use hypermesh::consensus::wire::{
    decode_evidence, decode_message, decode_wal_entry, encode_evidence, encode_message, encode_wal_entry,
    MAX_CERTIFICATE_SIGNATURES,
};
use hypermesh::consensus::Message;
use libfuzzer_sys::fuzz_target;
use trustchain_fuzz::check_codec;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            let msg = check_codec("consensus message", body, decode_message, |m| {
                encode_message(m).expect("a decoded message re-encodes")
            });
            match msg {
                Some(Message::Polka(c)) => assert!(c.polka_signatures.len() <= MAX_CERTIFICATE_SIGNATURES),
                Some(Message::Round(c)) => assert!(c.round_signatures.len() <= MAX_CERTIFICATE_SIGNATURES),
                _ => {}
            }
        }
        1 => {
            check_codec("write-ahead log entry", body, decode_wal_entry, |e| {
                encode_wal_entry(e).expect("a decoded log entry re-encodes")
            });
        }
        _ => {
            check_codec("evidence", body, decode_evidence, |e| {
                encode_evidence(e).expect("decoded evidence re-encodes")
            });
        }
    }
});
