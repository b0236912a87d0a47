//! Incremental decoding of a frame stream.

use std::collections::VecDeque;
use std::fmt;

use bytes::{Bytes, BytesMut};

use super::{Frame, FrameError, Header, HEADER_LEN};

/// Incremental decoder of the frames of one QUIC stream.
///
/// Feed it the chunks from `RecvStream::read_chunk` with [`push`](Self::push)
/// and drain it with [`next_frame`](Self::next_frame) until `Ok(None)`; at the
/// end of the stream, [`finish`](Self::finish) tells whether the stream ended
/// on a frame boundary.
///
/// Memory: the chunks are kept as they are, and a payload lying within one
/// chunk is returned as a slice of it; only a payload spanning chunks is
/// copied, into an allocation of exactly its (validated) length. Each header
/// is validated as soon as its 16 bytes have arrived, so a bad or oversized
/// header is refused before any of its payload is accepted. Once drained, the
/// decoder holds less than `HEADER_LEN + max_len` bytes; reading chunks of at
/// most [`read_limit`](Self::read_limit) bytes keeps it at or below that bound
/// at all times.
///
/// After an error the decoder is poisoned: it drops everything pushed and
/// every later call returns the same error.
pub struct FrameDecoder {
    max_len: usize,
    chunks: VecDeque<Bytes>,
    buffered: usize,
    /// The validated header at the front of `chunks`, not yet consumed.
    header: Option<Header>,
    poisoned: Option<FrameError>,
}

impl FrameDecoder {
    /// Creates a decoder refusing payloads longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len,
            chunks: VecDeque::new(),
            buffered: 0,
            header: None,
            poisoned: None,
        }
    }

    /// The payload length limit.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Appends a chunk of the stream. Ignored once the decoder is poisoned.
    pub fn push(&mut self, chunk: Bytes) {
        if self.poisoned.is_some() || chunk.is_empty() {
            return;
        }
        self.buffered += chunk.len();
        self.chunks.push_back(chunk);
        self.parse_header();
    }

    /// Returns the next complete frame, `Ok(None)` if more bytes are needed,
    /// or the error that poisoned the decoder.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(err) = &self.poisoned {
            return Err(err.clone());
        }
        let Some(header) = self.header else {
            return Ok(None);
        };
        if self.buffered - HEADER_LEN < header.len {
            return Ok(None);
        }
        self.advance(HEADER_LEN);
        let payload = self.take(header.len);
        self.header = None;
        // Validate the next header now; an error surfaces on the next call.
        self.parse_header();
        Ok(Some(header.into_frame(payload)))
    }

    /// Bytes pushed but not yet returned as frames (0 once poisoned).
    pub fn buffered_len(&self) -> usize {
        self.buffered
    }

    /// How many more bytes the decoder accepts without holding more than
    /// `HEADER_LEN + max_len`; pass it as the `max_length` of `read_chunk`.
    ///
    /// At least 1 whenever the decoder has been drained.
    pub fn read_limit(&self) -> usize {
        HEADER_LEN.saturating_add(self.max_len).saturating_sub(self.buffered)
    }

    /// Whether the decoder sits on a frame boundary with nothing buffered
    /// and no error.
    pub fn is_idle(&self) -> bool {
        self.poisoned.is_none() && self.buffered == 0
    }

    /// Checks, once the stream has ended and been drained, that it ended on a
    /// frame boundary: [`FrameError::Truncated`] if part of a frame is left.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(err) = &self.poisoned {
            return Err(err.clone());
        }
        let needed = match self.header {
            None if self.buffered == 0 => return Ok(()),
            None => HEADER_LEN,
            Some(header) => HEADER_LEN + header.len,
        };
        if self.buffered >= needed {
            return Err(FrameError::Unconsumed { pending: self.buffered });
        }
        Err(FrameError::Truncated {
            needed,
            have: self.buffered,
        })
    }

    /// Parses and validates the header at the front if it has arrived.
    fn parse_header(&mut self) {
        if self.header.is_some() || self.buffered < HEADER_LEN {
            return;
        }
        let mut raw = [0; HEADER_LEN];
        let mut filled = 0;
        for chunk in &self.chunks {
            let n = chunk.len().min(HEADER_LEN - filled);
            raw[filled..filled + n].copy_from_slice(&chunk[..n]);
            filled += n;
            if filled == HEADER_LEN {
                break;
            }
        }
        match Header::parse(&raw, self.max_len) {
            Ok(header) => self.header = Some(header),
            Err(err) => {
                self.chunks = VecDeque::new();
                self.buffered = 0;
                self.poisoned = Some(err);
            }
        }
    }

    /// Discards `n <= buffered` bytes from the front.
    fn advance(&mut self, mut n: usize) {
        self.buffered -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if front.len() > n {
                let _ = front.split_to(n);
                return;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
    }

    /// Removes `n <= buffered` bytes from the front, without copying if they
    /// lie within the first chunk.
    fn take(&mut self, n: usize) -> Bytes {
        match self.chunks.front_mut() {
            Some(front) if front.len() > n => {
                self.buffered -= n;
                return front.split_to(n);
            }
            Some(front) if front.len() == n => {
                self.buffered -= n;
                return self.chunks.pop_front().unwrap_or_default();
            }
            _ if n == 0 => return Bytes::new(),
            _ => {}
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let want = n - out.len();
            if front.len() > want {
                out.extend_from_slice(&front.split_to(want));
            } else {
                out.extend_from_slice(front);
                self.chunks.pop_front();
            }
        }
        self.buffered -= out.len();
        out.freeze()
    }
}

impl fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("max_len", &self.max_len)
            .field("buffered", &self.buffered)
            .field("chunks", &self.chunks.len())
            .field("header", &self.header)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::{decode_chunks, encode, header, sample};
    use crate::frame::{decode_one, FrameKind, DEFAULT_MAX_FRAME_LEN, VERSION};
    use proptest::prelude::*;

    #[test]
    fn every_split_point_decodes_identically() {
        let frames = [sample(), Frame::new(FrameKind::Gossip, 0, Bytes::new()), sample()];
        let wire = encode(&frames);
        for a in 0..=wire.len() {
            for b in a..=wire.len() {
                let got = decode_chunks(&[&wire[..a], &wire[a..b], &wire[b..]], 64);
                assert_eq!(got.as_deref(), Ok(&frames[..]), "split at {a}, {b}");
            }
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode_chunks(&bytes, 64).as_deref(), Ok(&frames[..]));
    }

    #[test]
    fn multiple_frames_in_one_chunk_are_zero_copy_and_ordered() {
        let frames: Vec<Frame> = (0..5)
            .map(|i| Frame::new(FrameKind::Request, i, vec![i as u8; 10 + i as usize]))
            .collect();
        let chunk = Bytes::from(encode(&frames));
        let range = chunk.as_ptr() as usize..chunk.as_ptr() as usize + chunk.len();
        let mut dec = FrameDecoder::new(64);
        dec.push(chunk.clone());
        for want in &frames {
            let got = dec.next_frame().ok().flatten();
            assert_eq!(got.as_ref(), Some(want));
            let ptr = got.map_or(0, |f| f.payload.as_ptr() as usize);
            assert!(range.contains(&ptr), "payload was copied");
        }
        assert_eq!(dec.next_frame(), Ok(None));
        assert!(dec.is_idle());
        assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn oversized_refused_from_header_alone() {
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        dec.push(header(VERSION, 0, 0, u32::MAX));
        // Refused on push, before next_frame is even called: the peer keeps
        // sending, nothing is buffered.
        for _ in 0..100 {
            assert_eq!(dec.buffered_len(), 0);
            dec.push(Bytes::from(vec![0; 64 * 1024]));
        }
        assert_eq!(dec.buffered_len(), 0);
        let err = FrameError::Oversized {
            len: u64::from(u32::MAX),
            max: DEFAULT_MAX_FRAME_LEN,
        };
        assert_eq!(dec.next_frame(), Err(err.clone()));
        assert_eq!(dec.next_frame(), Err(err.clone()));
        assert_eq!(dec.finish(), Err(err));
        assert!(!dec.is_idle());
    }

    #[test]
    fn header_split_before_oversize_is_detected_on_last_byte() {
        let raw = header(VERSION, 0, 0, 65);
        let mut dec = FrameDecoder::new(64);
        dec.push(raw.slice(..15));
        assert_eq!(dec.next_frame(), Ok(None));
        dec.push(raw.slice(15..));
        assert_eq!(dec.next_frame(), Err(FrameError::Oversized { len: 65, max: 64 }));
    }

    #[test]
    fn invalid_headers_refused_and_poison() {
        let cases = [
            (header(2, 0, 0, 0), FrameError::UnsupportedVersion(2)),
            (header(0, 0, 0, 0), FrameError::UnsupportedVersion(0)),
            (header(VERSION, 7, 0, 0), FrameError::UnknownKind(7)),
            (header(VERSION, 255, 0, 0), FrameError::UnknownKind(255)),
            (header(VERSION, 1, 2, 0), FrameError::ReservedFlags(2)),
            (header(VERSION, 1, 0x8001, 0), FrameError::ReservedFlags(0x8001)),
        ];
        for (raw, err) in cases {
            assert_eq!(decode_one(&raw, 64), Err(err.clone()));
            let mut dec = FrameDecoder::new(64);
            dec.push(raw);
            assert_eq!(dec.buffered_len(), 0);
            for _ in 0..3 {
                assert_eq!(dec.next_frame(), Err(err.clone()));
            }
            // A valid frame afterwards does not un-poison the decoder.
            dec.push(Bytes::from(encode(&[sample()])));
            assert_eq!(dec.next_frame(), Err(err.clone()));
        }
    }

    #[test]
    fn valid_frame_then_garbage_returns_frame_then_error() {
        let mut wire = encode(&[sample()]);
        wire.extend_from_slice(&header(9, 0, 0, 0));
        let mut dec = FrameDecoder::new(64);
        dec.push(Bytes::from(wire));
        assert_eq!(dec.next_frame(), Ok(Some(sample())));
        assert_eq!(dec.next_frame(), Err(FrameError::UnsupportedVersion(9)));
    }

    #[test]
    fn truncated_stream_detected_at_finish() {
        let wire = encode(&[sample(), sample()]);
        let mut dec = FrameDecoder::new(64);
        dec.push(Bytes::copy_from_slice(&wire[..wire.len() - 1]));
        assert_eq!(dec.next_frame(), Ok(Some(sample())));
        assert_eq!(dec.next_frame(), Ok(None));
        assert!(!dec.is_idle());
        assert_eq!(dec.finish(), Err(FrameError::Truncated { needed: 21, have: 20 }));
        let mut dec = FrameDecoder::new(64);
        dec.push(Bytes::copy_from_slice(&wire[..3]));
        assert_eq!(dec.finish(), Err(FrameError::Truncated { needed: 16, have: 3 }));
        // A complete frame left unread is a caller bug, not truncation.
        dec.push(Bytes::copy_from_slice(&wire[3..21]));
        assert_eq!(dec.finish(), Err(FrameError::Unconsumed { pending: 21 }));
    }

    #[test]
    fn read_limit_bounds_buffering() {
        let frame = Frame::new(FrameKind::Message, 1, vec![9; 100]);
        let wire = Bytes::from(encode(&[frame.clone(), frame.clone()]));
        let mut dec = FrameDecoder::new(100);
        let mut rest = wire.clone();
        let mut got = Vec::new();
        while !rest.is_empty() {
            let limit = dec.read_limit();
            assert!(limit > 0);
            dec.push(rest.split_to(limit.min(rest.len()).min(50)));
            assert!(dec.buffered_len() <= HEADER_LEN + 100);
            while let Ok(Some(f)) = dec.next_frame() {
                got.push(f);
            }
        }
        assert_eq!(got, [frame.clone(), frame]);
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        (
            0..FrameKind::ALL.len(),
            any::<bool>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(kind, end, id, payload)| {
                let frame = Frame::new(FrameKind::ALL[kind], id, payload);
                if end {
                    frame.with_end()
                } else {
                    frame
                }
            })
    }

    proptest! {
        #[test]
        fn prop_round_trip_any_chunking(
            frames in proptest::collection::vec(arb_frame(), 0..8),
            mut cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let wire = encode(&frames);
            for cut in &mut cuts {
                *cut %= wire.len() + 1;
            }
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([wire.len()]) {
                chunks.push(&wire[start..cut]);
                start = cut;
            }
            prop_assert_eq!(decode_chunks(&chunks, 200), Ok(frames));
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..512),
            chunk in 1usize..64,
            max_len in 0usize..300,
        ) {
            let mut dec = FrameDecoder::new(max_len);
            let mut offset = 0;
            let mut failed = None;
            for piece in data.chunks(chunk) {
                dec.push(Bytes::copy_from_slice(piece));
                loop {
                    match dec.next_frame() {
                        Ok(Some(frame)) => {
                            let (same, len) = decode_one(&data[offset..], max_len)
                                .map_err(|e| TestCaseError::fail(e.to_string()))?;
                            prop_assert_eq!(&same, &frame);
                            offset += len;
                        }
                        Ok(None) => break,
                        Err(err) => {
                            prop_assert_eq!(decode_one(&data[offset..], max_len), Err(err.clone()));
                            failed = Some(err);
                            break;
                        }
                    }
                }
                prop_assert!(dec.buffered_len() < HEADER_LEN + max_len);
                if failed.is_some() {
                    break;
                }
            }
            if let Some(err) = failed {
                prop_assert_eq!(dec.next_frame(), Err(err));
            } else {
                prop_assert_eq!(offset + dec.buffered_len(), data.len());
                prop_assert_eq!(dec.finish().is_ok(), offset == data.len());
            }
        }
    }
}
