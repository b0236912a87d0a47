//! Request/response RPC: one QUIC bidirectional stream per call, carrying
//! one Request frame and one Response (or Error) frame.
//!
//! A stream per call gives each call its own flow control and no
//! head-of-line blocking; cancellation is the stream's STOP_SENDING/RESET
//! (dropping the call's future sends them, the server drops the handler's
//! future on seeing them), and the frame id ties both frames to the call in
//! logs.

use bytes::{BufMut, Bytes, BytesMut};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::frame::{Frame, FrameDecoder, FrameKind};
use crate::tls::PeerIdentity;

/// Longest method name.
pub const MAX_METHOD_LEN: usize = 64;
/// Longest error message carried back to the caller.
pub(crate) const MAX_ERROR_MESSAGE: usize = 1024;

/// Why a call failed. Each variant crosses the wire with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The peer serves no method of that name (code 1).
    #[error("the peer has no method {0:?}")]
    UnknownMethod(String),
    /// The deadline passed before the response arrived (code 2).
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The call was cancelled (code 3).
    #[error("call cancelled")]
    Cancelled,
    /// The request was malformed (code 4).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The handler failed (code 5).
    #[error("internal error at the peer: {0}")]
    Internal(String),
    /// The peer is overloaded; retry later (code 6).
    #[error("peer overloaded, retry later")]
    Overloaded,
    /// The caller may not call this method: it is not enrolled, or not
    /// allowed (code 7).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// An application-defined error (codes 100 and up).
    #[error("application error {code}: {message}")]
    Application {
        /// The application's code (>= 100).
        code: u16,
        /// Its message.
        message: String,
    },
    /// The connection or stream failed locally (never sent).
    #[error("transport: {0}")]
    Transport(String),
}

impl RpcError {
    /// The stable wire code.
    pub fn code(&self) -> u16 {
        match self {
            RpcError::UnknownMethod(_) => 1,
            RpcError::DeadlineExceeded => 2,
            RpcError::Cancelled => 3,
            RpcError::BadRequest(_) => 4,
            RpcError::Internal(_) | RpcError::Transport(_) => 5,
            RpcError::Overloaded => 6,
            RpcError::Unauthorized(_) => 7,
            RpcError::Application { code, .. } => (*code).max(100),
        }
    }

    fn message(&self) -> String {
        match self {
            RpcError::UnknownMethod(m)
            | RpcError::BadRequest(m)
            | RpcError::Internal(m)
            | RpcError::Transport(m)
            | RpcError::Unauthorized(m) => m.clone(),
            RpcError::Application { message, .. } => message.clone(),
            _ => String::new(),
        }
    }

    pub(crate) fn to_frame(&self, id: u64) -> Frame {
        let mut msg = self.message();
        truncate_utf8(&mut msg, MAX_ERROR_MESSAGE);
        let mut b = BytesMut::with_capacity(2 + msg.len());
        b.put_u16(self.code());
        b.put_slice(msg.as_bytes());
        Frame::new(FrameKind::Error, id, b.freeze())
    }

    pub(crate) fn from_payload(p: &[u8]) -> RpcError {
        let Some((code, msg)) = p.split_first_chunk::<2>() else {
            return RpcError::Transport("malformed error frame".into());
        };
        let message = String::from_utf8_lossy(&msg[..msg.len().min(MAX_ERROR_MESSAGE)]).into_owned();
        match u16::from_be_bytes(*code) {
            1 => RpcError::UnknownMethod(message),
            2 => RpcError::DeadlineExceeded,
            3 => RpcError::Cancelled,
            4 => RpcError::BadRequest(message),
            5 => RpcError::Internal(message),
            6 => RpcError::Overloaded,
            7 => RpcError::Unauthorized(message),
            code @ 100.. => RpcError::Application { code, message },
            other => RpcError::Internal(format!("unknown error code {other}: {message}")),
        }
    }
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// A request as a handler sees it.
#[derive(Debug, Clone)]
pub struct RpcRequest {
    /// The authenticated caller.
    pub peer: PeerIdentity,
    /// The caller's address (as seen by the transport).
    pub remote: std::net::SocketAddr,
    /// The method name.
    pub method: String,
    /// The request body.
    pub body: Bytes,
    /// How long the caller will wait.
    pub deadline: Duration,
}

/// The future a handler returns.
pub type RpcFuture = Pin<Box<dyn Future<Output = Result<Bytes, RpcError>> + Send>>;

/// Serves one method. Implemented for any `Fn(RpcRequest) -> impl Future`.
pub trait RpcHandler: Send + Sync + 'static {
    /// Handles one call.
    fn call(&self, req: RpcRequest) -> RpcFuture;
}

impl<F, Fut> RpcHandler for F
where
    F: Fn(RpcRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, RpcError>> + Send + 'static,
{
    fn call(&self, req: RpcRequest) -> RpcFuture {
        Box::pin(self(req))
    }
}

/// Request payload: `method_len (u8) | method | deadline_ms (u32) | body`.
#[cfg(test)]
pub(crate) fn encode_request(id: u64, method: &str, deadline: Duration, body: Bytes) -> Result<Frame, RpcError> {
    let mut b = BytesMut::from(&request_prefix(method, deadline)?[..]);
    b.put_slice(&body);
    Ok(Frame::new(FrameKind::Request, id, b.freeze()))
}

/// The bytes of a request frame up to its body (frame header, method,
/// deadline): sent ahead of the body, so a large body is never copied.
pub(crate) fn encode_request_head(
    id: u64,
    method: &str,
    deadline: Duration,
    body_len: usize,
) -> Result<Bytes, RpcError> {
    let prefix = request_prefix(method, deadline)?;
    let payload_len = u32::try_from(prefix.len() + body_len)
        .map_err(|_| RpcError::BadRequest("request body longer than a frame can hold".into()))?;
    let mut b = BytesMut::with_capacity(crate::frame::HEADER_LEN + prefix.len());
    b.put_u8(crate::frame::VERSION);
    b.put_u8(FrameKind::Request.into());
    b.put_u16(0);
    b.put_u64(id);
    b.put_u32(payload_len);
    b.put_slice(&prefix);
    Ok(b.freeze())
}

fn request_prefix(method: &str, deadline: Duration) -> Result<BytesMut, RpcError> {
    if method.is_empty() || method.len() > MAX_METHOD_LEN {
        return Err(RpcError::BadRequest(format!(
            "method name must be 1..={MAX_METHOD_LEN} bytes"
        )));
    }
    let mut b = BytesMut::with_capacity(1 + method.len() + 4);
    b.put_u8(method.len() as u8);
    b.put_slice(method.as_bytes());
    b.put_u32(deadline.as_millis().min(u32::MAX as u128) as u32);
    Ok(b)
}

/// Parses a request payload; the body is a zero-copy slice.
pub(crate) fn decode_request(payload: &Bytes) -> Result<(String, Duration, Bytes), RpcError> {
    let bad = |m: &str| RpcError::BadRequest(m.to_string());
    let len = *payload.first().ok_or_else(|| bad("empty request"))? as usize;
    if len == 0 || len > MAX_METHOD_LEN {
        return Err(bad("method name length out of range"));
    }
    let method = payload.get(1..1 + len).ok_or_else(|| bad("truncated method name"))?;
    let method = std::str::from_utf8(method)
        .map_err(|_| bad("method name is not UTF-8"))?
        .to_string();
    let dl = payload.get(1 + len..5 + len).ok_or_else(|| bad("truncated deadline"))?;
    let deadline = Duration::from_millis(u32::from_be_bytes([dl[0], dl[1], dl[2], dl[3]]) as u64);
    Ok((method, deadline, payload.slice(5 + len..)))
}

/// Reads exactly one frame from a stream, with the decoder's size limit.
/// `header_id` receives the frame id as soon as the header bytes holding it
/// have arrived, so that a refusal can still name the call it refuses.
pub(crate) async fn read_one_frame(
    recv: &mut quinn::RecvStream,
    max_len: usize,
    header_id: &mut u64,
) -> Result<Frame, RpcError> {
    let mut decoder = FrameDecoder::new(max_len);
    let mut head = [0u8; 12];
    let mut head_len = 0;
    loop {
        if let Some(frame) = decoder.next_frame().map_err(|e| RpcError::BadRequest(e.to_string()))? {
            return Ok(frame);
        }
        match recv.read_chunk(decoder.read_limit().max(1), true).await {
            Ok(Some(chunk)) => {
                if head_len < head.len() {
                    let n = (head.len() - head_len).min(chunk.bytes.len());
                    head[head_len..head_len + n].copy_from_slice(&chunk.bytes[..n]);
                    head_len += n;
                    if head_len == head.len() {
                        *header_id = u64::from_be_bytes([
                            head[4], head[5], head[6], head[7], head[8], head[9], head[10], head[11],
                        ]);
                    }
                }
                decoder.push(chunk.bytes)
            }
            Ok(None) => return Err(RpcError::Transport("stream ended before a complete frame".into())),
            Err(quinn::ReadError::Reset(_)) => return Err(RpcError::Cancelled),
            Err(e) => return Err(RpcError::Transport(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_refusals() {
        let f = encode_request(7, "echo", Duration::from_millis(1500), Bytes::from_static(b"hi")).unwrap();
        assert_eq!(f.kind, FrameKind::Request);
        let (m, d, b) = decode_request(&f.payload).unwrap();
        assert_eq!(
            (m.as_str(), d, &b[..]),
            ("echo", Duration::from_millis(1500), &b"hi"[..])
        );
        // The head sent before a body is the same frame's first bytes.
        let mut encoded = BytesMut::new();
        f.encode(&mut encoded);
        let head = encode_request_head(7, "echo", Duration::from_millis(1500), 2).unwrap();
        assert_eq!(&encoded[..head.len()], &head[..]);
        assert_eq!(&encoded[head.len()..], b"hi");
        assert!(encode_request_head(1, "", Duration::ZERO, 0).is_err());
        assert!(encode_request(1, "", Duration::ZERO, Bytes::new()).is_err());
        assert!(encode_request(1, &"x".repeat(65), Duration::ZERO, Bytes::new()).is_err());
        for bad in [
            &b""[..],
            b"\x00",
            b"\x05ab",
            b"\x02\xff\xfe\x00\x00\x00\x01",
            b"\x01a\x00",
        ] {
            assert!(
                matches!(
                    decode_request(&Bytes::copy_from_slice(bad)),
                    Err(RpcError::BadRequest(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_keep_their_codes_across_the_wire() {
        let all = [
            RpcError::UnknownMethod("m".into()),
            RpcError::DeadlineExceeded,
            RpcError::Cancelled,
            RpcError::BadRequest("b".into()),
            RpcError::Internal("i".into()),
            RpcError::Overloaded,
            RpcError::Application {
                code: 404,
                message: "nope".into(),
            },
        ];
        for e in all {
            let f = e.to_frame(3);
            assert_eq!(RpcError::from_payload(&f.payload), e);
        }
        let long = RpcError::Internal("é".repeat(2000));
        let f = long.to_frame(1);
        assert!(f.payload.len() <= 2 + MAX_ERROR_MESSAGE);
        assert!(matches!(RpcError::from_payload(&[1]), RpcError::Transport(_)));
    }
}
