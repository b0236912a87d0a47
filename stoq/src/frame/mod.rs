//! The STOQ frame codec: length-prefixed, versioned frames (sans-IO).
//!
//! Every frame is a fixed 16-byte big-endian header followed by its payload:
//!
//! ```text
//! 0      version  u8   VERSION (1)
//! 1      kind     u8   FrameKind
//! 2..4   flags    u16  FLAG_END; every other bit is reserved and must be 0
//! 4..12  id       u64  request id (RPC) or 0
//! 12..16 len      u32  payload length, at most the receiver's limit
//! 16..   payload  len bytes
//! ```
//!
//! [`FrameDecoder`] decodes frames incrementally from the chunks of a QUIC
//! stream without copying payloads that lie within one chunk, and validates
//! each header before buffering any of its payload. [`FrameBatcher`] encodes
//! small frames into one buffer so that they go out in a single write, taking
//! its buffers from a shared [`BufferPool`].

use bytes::{BufMut, Bytes, BytesMut};

mod batch;
mod decoder;

pub use batch::{BufferPool, FrameBatcher};
pub use decoder::FrameDecoder;

/// The only frame format version this build reads and writes.
pub const VERSION: u8 = 1;
/// Length of the fixed frame header, in bytes.
pub const HEADER_LEN: usize = 16;
/// Default limit on the payload length of a received frame (1 MiB).
pub const DEFAULT_MAX_FRAME_LEN: usize = 1 << 20;
/// Flag bit marking the last frame of an exchange.
pub const FLAG_END: u16 = 1;
/// Default size in bytes at which [`FrameBatcher::should_flush`] says to flush (64 KiB).
pub const DEFAULT_BATCH_THRESHOLD: usize = 64 * 1024;

/// All flag bits this version defines.
const KNOWN_FLAGS: u16 = FLAG_END;

/// Errors of the frame codec.
///
/// All but [`FrameError::Unconsumed`] mean the peer sent bytes that are not
/// a valid frame stream for us; the stream should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header's version byte is not [`VERSION`].
    #[error("unsupported frame version {0} (this build speaks version {VERSION}); is the peer running an incompatible release?")]
    UnsupportedVersion(u8),
    /// The header's kind byte is not a known [`FrameKind`].
    #[error("unknown frame kind {0} (known kinds are 0..=6)")]
    UnknownKind(u8),
    /// The header sets flag bits other than [`FLAG_END`].
    #[error("reserved frame flag bits set: {0:#06x} (only FLAG_END = 0x0001 is defined)")]
    ReservedFlags(u16),
    /// The header announces a payload longer than the receiver accepts.
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes; raise the decoder's max_len or send smaller frames")]
    Oversized {
        /// Payload length announced by the header.
        len: u64,
        /// The receiver's limit.
        max: usize,
    },
    /// The input ended in the middle of a frame.
    #[error("truncated frame: need {needed} bytes, only {have} available")]
    Truncated {
        /// Bytes needed to complete the frame (header included).
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// [`FrameDecoder::finish`] was called while a complete frame was still
    /// buffered: a caller bug, not a peer error.
    #[error("{pending} bytes of complete frames were never read; call next_frame until it returns None before finish")]
    Unconsumed {
        /// Bytes still buffered.
        pending: usize,
    },
}

/// What a frame carries; byte 1 of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A one-way application message.
    Message = 0,
    /// An RPC request; `id` identifies the exchange.
    Request = 1,
    /// A successful RPC response to the request with the same `id`.
    Response = 2,
    /// A failed RPC response to the request with the same `id`.
    Error = 3,
    /// Cancels the RPC exchange with the same `id`.
    Cancel = 4,
    /// A gossip publication.
    Gossip = 5,
    /// Connection-level control information.
    Control = 6,
}

impl FrameKind {
    /// Every kind, in wire order.
    pub const ALL: [Self; 7] = [
        Self::Message,
        Self::Request,
        Self::Response,
        Self::Error,
        Self::Cancel,
        Self::Gossip,
        Self::Control,
    ];
}

impl TryFrom<u8> for FrameKind {
    type Error = FrameError;

    fn try_from(value: u8) -> Result<Self, FrameError> {
        Self::ALL
            .get(usize::from(value))
            .copied()
            .ok_or(FrameError::UnknownKind(value))
    }
}

impl From<FrameKind> for u8 {
    fn from(kind: FrameKind) -> Self {
        kind as Self
    }
}

/// One frame: header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame carries.
    pub kind: FrameKind,
    /// Flag bits; only [`FLAG_END`] is defined.
    pub flags: u16,
    /// Request id for RPC frames, 0 otherwise.
    pub id: u64,
    /// The payload.
    pub payload: Bytes,
}

impl Frame {
    /// Creates a frame with no flags set.
    pub fn new(kind: FrameKind, id: u64, payload: impl Into<Bytes>) -> Self {
        Self {
            kind,
            flags: 0,
            id,
            payload: payload.into(),
        }
    }

    /// Sets [`FLAG_END`]: this is the last frame of its exchange.
    #[must_use]
    pub fn with_end(mut self) -> Self {
        self.flags |= FLAG_END;
        self
    }

    /// Whether [`FLAG_END`] is set.
    pub fn is_end(&self) -> bool {
        self.flags & FLAG_END != 0
    }

    /// Length of the encoded frame, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Appends the encoded frame (header and payload) to `dst`.
    ///
    /// Flags are written as they are, so a frame with reserved bits set will
    /// be refused by the receiver.
    ///
    /// # Panics
    ///
    /// If the payload is longer than `u32::MAX` bytes, which the format
    /// cannot express.
    pub fn encode(&self, dst: &mut BytesMut) {
        let len =
            u32::try_from(self.payload.len()).expect("frame payload longer than u32::MAX bytes cannot be encoded");
        dst.reserve(self.encoded_len());
        dst.put_u8(VERSION);
        dst.put_u8(self.kind.into());
        dst.put_u16(self.flags);
        dst.put_u64(self.id);
        dst.put_u32(len);
        dst.extend_from_slice(&self.payload);
    }

    /// Decodes the frame at the start of `buf`, copying its payload.
    ///
    /// Returns the frame and the number of bytes it occupied, or
    /// [`FrameError::Truncated`] if `buf` does not hold the whole frame.
    pub fn decode_one(buf: &[u8], max_len: usize) -> Result<(Self, usize), FrameError> {
        let (header, total) = Header::parse_prefix(buf, max_len)?;
        let payload = Bytes::copy_from_slice(&buf[HEADER_LEN..total]);
        Ok((header.into_frame(payload), total))
    }

    /// Like [`Frame::decode_one`], but the payload is a zero-copy slice of `buf`.
    pub fn decode_bytes(buf: &Bytes, max_len: usize) -> Result<(Self, usize), FrameError> {
        let (header, total) = Header::parse_prefix(buf, max_len)?;
        Ok((header.into_frame(buf.slice(HEADER_LEN..total)), total))
    }
}

/// Decodes the frame at the start of `buf`; see [`Frame::decode_one`].
pub fn decode_one(buf: &[u8], max_len: usize) -> Result<(Frame, usize), FrameError> {
    Frame::decode_one(buf, max_len)
}

/// A validated header.
#[derive(Debug, Clone, Copy)]
struct Header {
    kind: FrameKind,
    flags: u16,
    id: u64,
    /// Payload length, validated against the receiver's limit.
    len: usize,
}

impl Header {
    /// Validates version, kind, flags and length, in that order.
    fn parse(raw: &[u8; HEADER_LEN], max_len: usize) -> Result<Self, FrameError> {
        let [version, kind, f0, f1, i0, i1, i2, i3, i4, i5, i6, i7, l0, l1, l2, l3] = *raw;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let kind = FrameKind::try_from(kind)?;
        let flags = u16::from_be_bytes([f0, f1]);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(FrameError::ReservedFlags(flags));
        }
        let wire_len = u32::from_be_bytes([l0, l1, l2, l3]);
        let len = usize::try_from(wire_len)
            .ok()
            .filter(|&len| len <= max_len && len.checked_add(HEADER_LEN).is_some())
            .ok_or(FrameError::Oversized {
                len: u64::from(wire_len),
                max: max_len,
            })?;
        Ok(Self {
            kind,
            flags,
            id: u64::from_be_bytes([i0, i1, i2, i3, i4, i5, i6, i7]),
            len,
        })
    }

    /// Parses the header at the start of `buf` and checks that the whole
    /// frame is present; returns the header and the frame's total length.
    fn parse_prefix(buf: &[u8], max_len: usize) -> Result<(Self, usize), FrameError> {
        let raw = buf.first_chunk().ok_or(FrameError::Truncated {
            needed: HEADER_LEN,
            have: buf.len(),
        })?;
        let header = Self::parse(raw, max_len)?;
        let total = HEADER_LEN + header.len;
        if buf.len() < total {
            return Err(FrameError::Truncated {
                needed: total,
                have: buf.len(),
            });
        }
        Ok((header, total))
    }

    fn into_frame(self, payload: Bytes) -> Frame {
        Frame {
            kind: self.kind,
            flags: self.flags,
            id: self.id,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn encode(frames: &[Frame]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        for frame in frames {
            frame.encode(&mut buf);
        }
        buf.to_vec()
    }

    /// Pushes `chunks` one by one, draining after each; returns the frames.
    pub(super) fn decode_chunks(chunks: &[&[u8]], max_len: usize) -> Result<Vec<Frame>, FrameError> {
        let mut dec = FrameDecoder::new(max_len);
        let mut out = Vec::new();
        for chunk in chunks {
            dec.push(Bytes::copy_from_slice(chunk));
            while let Some(frame) = dec.next_frame()? {
                out.push(frame);
            }
            assert!(dec.buffered_len() < HEADER_LEN + max_len);
        }
        dec.finish()?;
        Ok(out)
    }

    pub(super) fn sample() -> Frame {
        Frame::new(FrameKind::Response, 0x0102_0304_0506_0708, &b"hello"[..]).with_end()
    }

    pub(super) fn header(version: u8, kind: u8, flags: u16, len: u32) -> Bytes {
        let mut raw = vec![version, kind];
        raw.extend_from_slice(&flags.to_be_bytes());
        raw.extend_from_slice(&7u64.to_be_bytes());
        raw.extend_from_slice(&len.to_be_bytes());
        Bytes::from(raw)
    }

    #[test]
    fn round_trip_every_kind() {
        for (i, kind) in FrameKind::ALL.into_iter().enumerate() {
            assert_eq!(u8::from(kind) as usize, i);
            assert_eq!(FrameKind::try_from(i as u8), Ok(kind));
            let frame = Frame::new(kind, i as u64 * 1000, vec![i as u8; i * 3]);
            let wire = encode(std::slice::from_ref(&frame));
            assert_eq!(wire.len(), frame.encoded_len());
            assert_eq!(decode_one(&wire, 64), Ok((frame.clone(), wire.len())));
            let wire = Bytes::from(wire);
            assert_eq!(Frame::decode_bytes(&wire, 64), Ok((frame.clone(), wire.len())));
            assert_eq!(decode_chunks(&[&wire], 64), Ok(vec![frame]));
        }
        assert_eq!(FrameKind::try_from(7), Err(FrameError::UnknownKind(7)));
    }

    #[test]
    fn known_answer_header() {
        let wire = encode(&[sample()]);
        assert_eq!(
            wire,
            [1, 2, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']
        );
        assert!(sample().is_end());
    }

    #[test]
    fn decode_one_truncated_and_invalid() {
        let wire = encode(&[sample()]);
        assert_eq!(
            decode_one(&wire[..10], 64),
            Err(FrameError::Truncated { needed: 16, have: 10 })
        );
        assert_eq!(
            decode_one(&wire[..18], 64),
            Err(FrameError::Truncated { needed: 21, have: 18 })
        );
        assert_eq!(decode_one(&wire, 4), Err(FrameError::Oversized { len: 5, max: 4 }));
    }
}
