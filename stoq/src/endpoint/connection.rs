//! One authenticated connection and the tasks that serve it.

use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::rpc::{decode_request, encode_request_head, read_one_frame, RpcError, RpcRequest};
use super::{Incoming, Shared};
use crate::frame::{Frame, FrameBatcher, FrameDecoder, FrameKind};
use crate::tls::PeerIdentity;
use crate::{Error, Result};

/// Application error code used to close a connection whose peer broke the
/// framing protocol.
pub const CLOSE_PROTOCOL_ERROR: u32 = 0x10;
/// Application error code of an orderly close.
pub const CLOSE_NORMAL: u32 = 0;
/// Outbound messages queued per connection before senders wait.
const OUTBOUND_QUEUE: usize = 1024;

/// An authenticated STOQ connection. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<ConnectionInner>,
}

struct ConnectionInner {
    id: usize,
    quic: quinn::Connection,
    peer: PeerIdentity,
    outbound: mpsc::Sender<Frame>,
    next_request: AtomicU64,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.inner.peer.node_id())
            .field("remote", &self.inner.quic.remote_address())
            .finish()
    }
}

impl Connection {
    /// Wraps an established quinn connection, verifies who the peer is and
    /// starts the tasks serving it.
    pub(crate) fn establish(quic: quinn::Connection, shared: Arc<Shared>, incoming: bool) -> Result<Self> {
        let chain = quic
            .peer_identity()
            .and_then(|any| any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
            .ok_or_else(|| Error::Config("peer presented no certificate chain".into()))?;
        let mut peer = PeerIdentity::from_chain(&chain)?;
        if let (true, Some(verifier), Some((leaf, rest))) = (incoming, &shared.enrollment_verifier, chain.split_first())
        {
            // The TLS verifier also admitted self-signed clients: only the
            // full chain check tells whether this one is enrolled.
            peer.enrolled = verifier
                .verify(
                    leaf,
                    rest,
                    &crate::pki::KeyPurpose::Client,
                    std::time::SystemTime::now(),
                )
                .is_ok();
        }
        let (outbound, outbound_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let conn = Connection {
            inner: Arc::new(ConnectionInner {
                id,
                quic,
                peer,
                outbound,
                next_request: AtomicU64::new(1),
                shared,
            }),
        };
        let shared = &conn.inner.shared;
        shared.metrics.connections_established.inc();
        shared.metrics.connections_open.inc();
        super::pubsub::lock(&shared.connections).insert(id, conn.clone());
        if conn.peer().enrolled {
            shared
                .gossip
                .add_peer(conn.peer().node_id(), id, conn.inner.outbound.clone());
        }
        tokio::spawn(write_messages(conn.inner.quic.clone(), outbound_rx, shared.clone()));
        tokio::spawn(conn.clone().drive());
        debug!(peer = %conn.peer().node_id().short(), remote = %conn.remote_address(), "connection established");
        Ok(conn)
    }

    /// The authenticated peer.
    pub fn peer(&self) -> &PeerIdentity {
        &self.inner.peer
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.inner.quic.remote_address()
    }

    /// Current round-trip time estimate.
    pub fn rtt(&self) -> Duration {
        self.inner.quic.rtt()
    }

    /// Whether the connection has been closed (by either side).
    pub fn is_closed(&self) -> bool {
        self.inner.quic.close_reason().is_some()
    }

    /// The underlying quinn connection: statistics, and streams *we* open
    /// towards a non-STOQ peer. Streams the peer opens are always served by
    /// STOQ (bidirectional: RPC; unidirectional: framed messages), so two
    /// STOQ endpoints exchange data through `call` and `send_message`.
    pub fn quic(&self) -> &quinn::Connection {
        &self.inner.quic
    }

    /// Closes the connection.
    pub fn close(&self, reason: &str) {
        self.inner.quic.close(CLOSE_NORMAL.into(), reason.as_bytes());
    }

    /// Calls `method` on the peer with `body`, waiting at most `deadline`
    /// (the endpoint's default when `None`). Dropping the returned future
    /// cancels the call at the peer too.
    pub async fn call(&self, method: &str, body: Bytes, deadline: Option<Duration>) -> Result<Bytes, RpcError> {
        let deadline = deadline.unwrap_or(self.inner.shared.config.timeouts.rpc_default_deadline);
        let id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let head = encode_request_head(id, method, deadline, body.len())?;
        let max = self.inner.shared.config.limits.max_frame_len;
        let exchange = async {
            let (mut send, mut recv) = self
                .inner
                .quic
                .open_bi()
                .await
                .map_err(|e| RpcError::Transport(e.to_string()))?;
            // Head and body as two chunks: the body is not copied.
            send.write_all_chunks(&mut [head, body])
                .await
                .map_err(|e| RpcError::Transport(e.to_string()))?;
            let _ = send.finish();
            // If this future is dropped here (deadline, caller gave up), the
            // dropped RecvStream sends STOP_SENDING and the peer drops its
            // handler: that is the cancellation signal.
            let response = read_one_frame(&mut recv, max, &mut 0).await?;
            match response.kind {
                FrameKind::Response if response.id == id => Ok(response.payload),
                // Id 0: the peer could not parse our request far enough to
                // know its id; the stream is this call's alone, so it is ours.
                FrameKind::Error if response.id == id || response.id == 0 => {
                    Err(RpcError::from_payload(&response.payload))
                }
                _ => Err(RpcError::Transport(format!(
                    "unexpected {:?} frame in reply to call {id}",
                    response.kind
                ))),
            }
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(r) => r,
            Err(_) => Err(RpcError::DeadlineExceeded),
        }
    }

    /// Sends an application message: reliable and ordered per connection,
    /// batched with others into few stream writes. Waits when the
    /// connection's queue is full.
    pub async fn send_message(&self, payload: Bytes) -> Result<()> {
        let max = self.inner.shared.config.limits.max_frame_len;
        if payload.len() > max {
            return Err(Error::Frame(crate::frame::FrameError::Oversized {
                len: payload.len() as u64,
                max,
            }));
        }
        self.inner
            .outbound
            .send(Frame::new(FrameKind::Message, 0, payload))
            .await
            .map_err(|_| Error::Connection {
                peer: self.remote_address(),
                reason: "connection closed".into(),
                retryable: true,
            })
    }

    /// Sends an unreliable datagram (may be lost, duplicated or reordered).
    pub fn send_datagram(&self, payload: Bytes) -> Result<()> {
        self.inner.quic.send_datagram(payload).map_err(|e| Error::Connection {
            peer: self.remote_address(),
            reason: format!("datagram not sent: {e}"),
            retryable: false,
        })
    }

    /// Largest datagram the path currently carries.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.inner.quic.max_datagram_size()
    }

    /// Serves the peer's streams and datagrams until the connection ends.
    async fn drive(self) {
        let quic = self.inner.quic.clone();
        let shutdown = self.inner.shared.shutdown.clone();
        let reason = loop {
            tokio::select! {
                bi = quic.accept_bi() => match bi {
                    Ok((send, recv)) => { tokio::spawn(self.clone().serve_call(send, recv)); }
                    Err(e) => break e,
                },
                uni = quic.accept_uni() => match uni {
                    Ok(recv) => { tokio::spawn(self.clone().read_messages(recv)); }
                    Err(e) => break e,
                },
                dg = quic.read_datagram() => match dg {
                    Ok(_) if !self.peer().enrolled => {}
                    Ok(payload) => {
                        self.inner.shared.metrics.datagrams_received.inc();
                        // Datagrams are unreliable: a full queue drops them.
                        let _ = self.inner.shared.events.try_send(Incoming::Datagram { from: self.peer().clone(), payload });
                    }
                    Err(e) => break e,
                },
                () = shutdown.cancelled() => {
                    quic.close(CLOSE_NORMAL.into(), b"endpoint shutting down");
                    break quinn::ConnectionError::LocallyClosed;
                }
            }
        };
        debug!(peer = %self.peer().node_id().short(), %reason, "connection ended");
        let shared = &self.inner.shared;
        shared.gossip.remove_peer(&self.peer().node_id(), self.inner.id);
        super::pubsub::lock(&shared.connections).remove(&self.inner.id);
        shared.metrics.connections_open.dec();
    }

    /// Serves one RPC stream.
    async fn serve_call(self, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
        let shared = self.inner.shared.clone();
        let limits = &shared.config.limits;
        let mut header_id = 0;
        let read = read_one_frame(&mut recv, limits.max_frame_len, &mut header_id);
        let (id, result) = match tokio::time::timeout(shared.config.timeouts.rpc_request_read, read).await {
            Err(_) => (header_id, Err(RpcError::DeadlineExceeded)),
            Ok(Err(e)) => {
                shared.metrics.frames_rejected.inc();
                (header_id, Err(e))
            }
            Ok(Ok(frame)) if frame.kind != FrameKind::Request => (
                frame.id,
                Err(RpcError::BadRequest(format!(
                    "expected a request frame, got {:?}",
                    frame.kind
                ))),
            ),
            Ok(Ok(frame)) => (frame.id, self.dispatch(frame.id, &frame.payload, &mut send).await),
        };
        if matches!(result, Err(RpcError::Cancelled)) {
            return;
        }
        shared.metrics.rpc_served.inc();
        let reply = match result {
            Ok(body) => Frame::new(FrameKind::Response, id, body),
            Err(e) => {
                shared.metrics.rpc_errors.inc();
                e.to_frame(id)
            }
        };
        if send.write_chunk(encode(&reply)).await.is_ok() {
            let _ = send.finish();
        }
    }

    async fn dispatch(&self, id: u64, payload: &Bytes, send: &mut quinn::SendStream) -> Result<Bytes, RpcError> {
        let (method, deadline, body) = decode_request(payload)?;
        let handler = self
            .inner
            .shared
            .handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&method)
            .cloned();
        let handler = handler.ok_or_else(|| RpcError::UnknownMethod(method.clone()))?;
        if !self.peer().enrolled
            && !self
                .inner
                .shared
                .public_methods
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&method)
        {
            return Err(RpcError::Unauthorized(format!(
                "{method} needs an enrolled certificate; enroll first"
            )));
        }
        let request = RpcRequest {
            peer: self.peer().clone(),
            remote: self.remote_address(),
            method,
            body,
            deadline,
        };
        tokio::select! {
            r = tokio::time::timeout(deadline, handler.call(request)) => r.unwrap_or(Err(RpcError::DeadlineExceeded)),
            // The caller gave up (STOP_SENDING): drop the handler's future.
            _ = send.stopped() => {
                debug!(call = id, "call cancelled by the caller");
                Err(RpcError::Cancelled)
            }
        }
    }

    /// Reads frames from one of the peer's message streams.
    async fn read_messages(self, mut recv: quinn::RecvStream) {
        let shared = self.inner.shared.clone();
        let mut decoder = FrameDecoder::new(shared.config.limits.max_frame_len);
        loop {
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        if let Err(reason) = self.dispatch_message(frame).await {
                            return self.protocol_error(&reason);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return self.protocol_error(&e.to_string()),
                }
            }
            match recv.read_chunk(decoder.read_limit().max(1), true).await {
                Ok(Some(chunk)) => decoder.push(chunk.bytes),
                Ok(None) => {
                    if let Err(e) = decoder.finish() {
                        self.protocol_error(&e.to_string());
                    }
                    return;
                }
                Err(_) => return,
            }
        }
    }

    async fn dispatch_message(&self, frame: Frame) -> Result<(), String> {
        let shared = &self.inner.shared;
        if !self.peer().enrolled {
            return Err("messages and gossip need an enrolled certificate".into());
        }
        match frame.kind {
            FrameKind::Gossip => {
                if let Err(e) = shared.gossip.handle_frame(self.peer().node_id(), frame.payload) {
                    // A bad gossip message is dropped; the link stays up.
                    warn!(peer = %self.peer().node_id().short(), error = %e, "gossip message refused");
                }
                Ok(())
            }
            FrameKind::Message => {
                shared.metrics.messages_received.inc();
                let _ = shared
                    .events
                    .send(Incoming::Message {
                        from: self.peer().clone(),
                        payload: frame.payload,
                    })
                    .await;
                Ok(())
            }
            other => Err(format!("{other:?} frame on a message stream")),
        }
    }

    fn protocol_error(&self, reason: &str) {
        self.inner.shared.metrics.frames_rejected.inc();
        warn!(peer = %self.peer().node_id().short(), reason, "closing connection: protocol error");
        self.inner.quic.close(
            CLOSE_PROTOCOL_ERROR.into(),
            format!("protocol error: {reason}").as_bytes(),
        );
    }
}

fn encode(frame: &Frame) -> Bytes {
    let mut buf = bytes::BytesMut::with_capacity(frame.encoded_len());
    frame.encode(&mut buf);
    buf.freeze()
}

/// Drains a connection's outbound queue into one unidirectional stream,
/// batching whatever is queued into a single write.
async fn write_messages(quic: quinn::Connection, mut rx: mpsc::Receiver<Frame>, shared: Arc<Shared>) {
    let mut batcher = FrameBatcher::new(shared.pool.clone());
    let mut stream: Option<quinn::SendStream> = None;
    while let Some(frame) = rx.recv().await {
        batcher.push(&frame);
        while !batcher.should_flush() {
            match rx.try_recv() {
                Ok(f) => batcher.push(&f),
                Err(_) => break,
            }
        }
        let send = match &mut stream {
            Some(s) => s,
            None => match quic.open_uni().await {
                Ok(s) => stream.insert(s),
                Err(_) => return,
            },
        };
        if send.write_chunk(batcher.take()).await.is_err() {
            return;
        }
    }
    if let Some(mut s) = stream {
        let _ = s.finish();
    }
}
