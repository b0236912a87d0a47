//! Feeds arbitrary bytes, in arbitrary chunks, to `FrameDecoder`.
//!
//! Input layout: two bytes choosing `max_len`, one seed byte choosing the
//! chunking, then the stream itself. Checks that the decoder never panics,
//! never holds more than `HEADER_LEN + max_len` bytes once drained (nor at
//! all when chunks respect `read_limit`), agrees with `decode_one`, and that
//! every decoded frame re-encodes to exactly the bytes it came from.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use stoq::frame::{decode_one, FrameDecoder, DEFAULT_MAX_FRAME_LEN, HEADER_LEN};

fuzz_target!(|input: &[u8]| {
    let Some(([m0, m1, seed], stream)) = input.split_first_chunk::<3>() else {
        return;
    };
    // Mostly small limits, so that both complete and oversized frames occur.
    let max_len = if m0 & 0x80 != 0 {
        DEFAULT_MAX_FRAME_LEN
    } else {
        usize::from(u16::from_be_bytes([m0 & 0x7f, *m1]))
    };
    let respect_read_limit = seed & 1 != 0;
    let max_chunk = usize::from(*seed >> 1) * 2 + 1;
    let mut rng = u32::from(*seed) | 0x100;

    let data = Bytes::copy_from_slice(stream);
    let mut dec = FrameDecoder::new(max_len);
    let (mut pushed, mut consumed) = (0, 0);
    let bound = HEADER_LEN + max_len;

    while pushed < data.len() {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        // Chunk lengths 0..=max_chunk (empty chunks included).
        let mut len = (rng as usize % (max_chunk + 1)).min(data.len() - pushed);
        if respect_read_limit {
            len = len.min(dec.read_limit());
        }
        dec.push(data.slice(pushed..pushed + len));
        pushed += len;
        if respect_read_limit {
            assert!(dec.buffered_len() <= bound, "read_limit not honoured");
        }
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    let mut out = BytesMut::new();
                    frame.encode(&mut out);
                    let end = consumed + out.len();
                    assert_eq!(&out[..], &data[consumed..end], "re-encoding differs");
                    assert_eq!(
                        decode_one(&data[consumed..], max_len),
                        Ok((frame, out.len()))
                    );
                    consumed = end;
                }
                Ok(None) => break,
                Err(err) => {
                    // Poisoned: same error forever, nothing buffered, and the
                    // whole-buffer decoder agrees.
                    assert_eq!(
                        decode_one(&data[consumed..], max_len).err(),
                        Some(err.clone())
                    );
                    assert_eq!(dec.buffered_len(), 0);
                    dec.push(data.slice(pushed..));
                    assert_eq!(dec.buffered_len(), 0);
                    assert_eq!(dec.next_frame(), Err(err.clone()));
                    assert_eq!(dec.finish(), Err(err));
                    return;
                }
            }
        }
        assert!(dec.buffered_len() < bound, "drained decoder holds too much");
        assert_eq!(consumed + dec.buffered_len(), pushed);
    }
    match dec.finish() {
        Ok(()) => assert_eq!(consumed, data.len()),
        Err(err) => {
            assert!(consumed < data.len());
            assert_eq!(decode_one(&data[consumed..], max_len).err(), Some(err));
        }
    }
});
