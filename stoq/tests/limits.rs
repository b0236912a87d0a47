//! Abuse limits and failure paths: IPv4, oversized and malformed frames,
//! stream limits, the per-/64 connection rate limit, RPC errors and
//! cancellation.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::{BufMut, Bytes};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

use common::*;
use stoq::endpoint::{RpcError, RpcRequest, CLOSE_PROTOCOL_ERROR};
use stoq::{Connection, Endpoint, Error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_is_refused_for_bind_and_connect() {
    init_tracing();
    let pki = TestPki::new();
    let identity = pki.identity(&["node-a.mesh"]);
    let mut cfg = config();
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let err = Endpoint::bind(cfg, pq_tls(identity.clone(), &pki)).unwrap_err();
    assert!(matches!(err, Error::Ipv4Refused(_)), "{err:?}");
    assert!(err.to_string().contains("IPv6"), "{err}");

    let mut mapped = config();
    mapped.listen = "[::ffff:127.0.0.1]:0".parse().unwrap();
    assert!(matches!(
        Endpoint::bind(mapped, pq_tls(identity.clone(), &pki)),
        Err(Error::Ipv4Refused(_))
    ));

    let endpoint = Endpoint::bind(config(), pq_tls(identity, &pki)).unwrap();
    for target in ["127.0.0.1:4433", "[::ffff:10.0.0.1]:4433"] {
        let err = endpoint
            .connect(target.parse().unwrap(), "node-b.mesh")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Ipv4Refused(_)), "{target}: {err:?}");
        assert!(err.to_string().contains("IPv6"), "{err}");
        assert!(!err.is_retryable());
    }
    assert_eq!(endpoint.metrics().handshake_failures.get(), 0, "nothing was dialled");
}

fn small_frames_config() -> stoq::EndpointConfig {
    let mut cfg = config();
    cfg.limits.max_frame_len = 1024;
    cfg
}

async fn echo_ok(conn: &Connection, what: &[u8]) {
    let reply = conn
        .call("echo", Bytes::copy_from_slice(what), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(&reply[..], what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_rpc_request_is_refused_and_the_server_stays_healthy() {
    init_tracing();
    let pki = TestPki::new();
    let (server, _) = node_with(&pki, "node-b.mesh", small_frames_config());
    let (client, _) = node(&pki, "node-a.mesh");
    let conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();

    let big = Bytes::from(vec![7u8; 4096]);
    let err = conn.call("echo", big, Some(Duration::from_secs(5))).await.unwrap_err();
    assert!(
        matches!(err, RpcError::BadRequest(_) | RpcError::Transport(_)),
        "{err:?}"
    );
    wait_until("the oversized frame to be counted", || {
        server.metrics().frames_rejected.get() >= 1
    })
    .await;

    // Same connection, new stream.
    assert!(!conn.is_closed());
    echo_ok(&conn, b"small").await;
    // A new connection too.
    let (other, _) = node(&pki, "node-c.mesh");
    echo_ok(
        &other.connect(addr(&server), "node-b.mesh").await.unwrap(),
        b"still serving",
    )
    .await;
}

/// The refusal of an oversized request should say so: the server knows the
/// call's id from the header it refused, and the caller should get
/// `BadRequest` naming the size limit rather than a generic transport
/// error about an unexpected frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_rpc_request_error_reaches_the_caller() {
    init_tracing();
    let pki = TestPki::new();
    let (server, _) = node_with(&pki, "node-b.mesh", small_frames_config());
    let (client, _) = node(&pki, "node-a.mesh");
    let conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();
    // Send the header and body ourselves so that writing cannot fail first.
    let (mut send, mut recv) = conn.quic().open_bi().await.unwrap();
    let request = raw_request(42, "echo", 5_000, &[7u8; 2048]);
    let _ = send.write_all(&request).await;
    let reply = within("error reply", recv.read_to_end(1 << 16)).await.unwrap();
    assert!(reply.len() >= 16, "{reply:?}");
    assert_eq!(reply[1], 3, "an Error frame");
    let id = u64::from_be_bytes(reply[4..12].try_into().unwrap());
    let code = u16::from_be_bytes([reply[16], reply[17]]);
    let message = String::from_utf8_lossy(&reply[18..]).into_owned();
    assert_eq!(code, 4, "BadRequest: {message}");
    assert!(message.contains("exceeds the limit"), "{message}");
    assert_eq!(id, 42, "the Error frame must carry the refused call's id ({message})");
}

/// Opens a raw message stream on `conn` and sends `bytes`; the server must
/// close the whole connection with a protocol error.
async fn expect_protocol_close(conn: &Connection, bytes: &[u8]) -> String {
    let mut uni = conn.quic().open_uni().await.unwrap();
    let _ = uni.write_all(bytes).await;
    let _ = uni.finish();
    let reason = within("protocol close", conn.quic().closed()).await;
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                close.error_code,
                quinn::VarInt::from_u32(CLOSE_PROTOCOL_ERROR),
                "{close:?}"
            );
            let text = String::from_utf8_lossy(&close.reason).into_owned();
            assert!(text.contains("protocol error"), "{text}");
            text
        }
        other => panic!("expected an application close with a protocol error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_header_claiming_4_gib_closes_the_connection() {
    init_tracing();
    let pki = TestPki::new();
    let (server, _) = node_with(&pki, "node-b.mesh", small_frames_config());
    let (client, _) = node(&pki, "node-a.mesh");
    let conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();
    let (bystander, _) = node(&pki, "node-c.mesh");
    let healthy = bystander.connect(addr(&server), "node-b.mesh").await.unwrap();

    let before = server.metrics().frames_rejected.get();
    let header = raw_header(1, 0, 0, u32::MAX);
    let text = expect_protocol_close(&conn, &header).await;
    assert!(text.contains("exceeds the limit"), "{text}");
    assert!(conn.is_closed());
    assert!(server.metrics().frames_rejected.get() > before);

    // Other connections live on; new ones are served.
    echo_ok(&healthy, b"unaffected").await;
    let (late, _) = node(&pki, "node-d.mesh");
    echo_ok(&late.connect(addr(&server), "node-b.mesh").await.unwrap(), b"new").await;
    // The closed connection is forgotten by the server.
    wait_until("server to drop the closed connection", || {
        server.connections().len() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_the_connection_only() {
    init_tracing();
    let pki = TestPki::new();
    let (server, _) = node(&pki, "node-b.mesh");

    let mut garbage = vec![0xA5u8; 64];
    garbage[0] = 0xDE; // not version 1
    for (i, x) in garbage.iter_mut().enumerate().skip(1) {
        *x = (i as u8).wrapping_mul(37) ^ 0x5A;
    }
    let mut version_2 = raw_header(2, 0, 0, 4);
    version_2.put_slice(b"abcd");
    let mut request_on_message_stream = raw_header(1, 1, 9, 4);
    request_on_message_stream.put_slice(b"abcd");
    let mut reserved_flags = raw_header(1, 0, 0, 0);
    reserved_flags[3] = 0x80;
    let mut truncated = raw_header(1, 0, 0, 100);
    truncated.put_slice(b"only a few bytes");

    let cases: [(&str, &[u8], &str); 5] = [
        ("garbage", &garbage, "version"),
        ("unknown version", &version_2, "version 2"),
        (
            "request frame on a message stream",
            &request_on_message_stream,
            "Request",
        ),
        ("reserved flags", &reserved_flags, "flag"),
        ("truncated frame", &truncated, "truncated"),
    ];
    for (n, (what, bytes, expect)) in cases.into_iter().enumerate() {
        let (client, _) = node(&pki, &format!("client-{n}.mesh"));
        let conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();
        echo_ok(&conn, b"before").await;
        let text = expect_protocol_close(&conn, bytes).await;
        assert!(text.contains(expect), "{what}: {text}");
        // The endpoint still serves new connections.
        let (next, _) = node(&pki, &format!("next-{n}.mesh"));
        echo_ok(
            &next.connect(addr(&server), "node-b.mesh").await.unwrap(),
            what.as_bytes(),
        )
        .await;
    }
    assert!(server.metrics().frames_rejected.get() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stream_limit_holds_back_the_fifth_call() {
    init_tracing();
    let pki = TestPki::new();
    let mut cfg = config();
    cfg.limits.max_concurrent_bidi_streams = 4;
    let (server, _) = node_with(&pki, "node-b.mesh", cfg);
    let gate = Arc::new(Semaphore::new(0));
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    {
        let gate = gate.clone();
        server.register("slow", move |req: RpcRequest| {
            let gate = gate.clone();
            let entered = entered_tx.clone();
            async move {
                let _ = entered.send(());
                gate.acquire().await.unwrap().forget();
                Ok(req.body)
            }
        });
    }
    let (client, _) = node(&pki, "node-a.mesh");
    let conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();

    let calls: Vec<_> = (0..4u8)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                conn.call("slow", Bytes::from(vec![i]), Some(Duration::from_secs(30)))
                    .await
            })
        })
        .collect();
    for _ in 0..4 {
        within("a slow call to reach its handler", entered.recv())
            .await
            .unwrap();
    }

    // All four streams are in use: a fifth cannot be opened.
    let fifth = tokio::time::timeout(Duration::from_millis(500), conn.quic().open_bi()).await;
    assert!(fifth.is_err(), "a fifth stream was opened beyond the limit of 4");
    assert!(entered.try_recv().is_err(), "no fifth handler ran");

    gate.add_permits(4);
    for (i, call) in calls.into_iter().enumerate() {
        let reply = within("slow call", call).await.unwrap().unwrap();
        assert_eq!(&reply[..], &[i as u8]);
    }
    // Credit comes back once the first calls are done.
    let (mut send, mut recv) = within("stream credit", conn.quic().open_bi()).await.unwrap();
    send.write_all(&raw_request(1000, "echo", 5_000, b"fifth"))
        .await
        .unwrap();
    send.finish().unwrap();
    let reply = within("fifth reply", recv.read_to_end(1 << 16)).await.unwrap();
    assert_eq!(&reply[16..], b"fifth");
    // And many more calls than the limit, sequentially, still work.
    for _ in 0..12 {
        echo_ok(&conn, b"again").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_are_rate_limited_per_prefix() {
    init_tracing();
    let pki = TestPki::new();
    let mut cfg = config();
    cfg.limits.new_connections_per_sec_per_prefix = 0.0001;
    cfg.limits.new_connection_burst_per_prefix = 2.0;
    let (server, _) = node_with(&pki, "node-b.mesh", cfg);

    for n in 0..2 {
        let (client, _) = node(&pki, &format!("client-{n}.mesh"));
        echo_ok(
            &client.connect(addr(&server), "node-b.mesh").await.unwrap(),
            b"in budget",
        )
        .await;
    }
    // The third attempt from the same /64 is refused before any handshake:
    // seen from a raw quinn client, the server answers CONNECTION_REFUSED.
    let raw = raw_client_endpoint();
    let identity = pki.identity(&["client-2.mesh"]);
    let stoq_client = pq_tls(identity, &pki).quic_client_config().unwrap();
    let refused = raw
        .connect_with(quinn::ClientConfig::new(stoq_client), addr(&server), "node-b.mesh")
        .unwrap();
    let err = within("refused raw connect", refused).await.unwrap_err();
    match &err {
        quinn::ConnectionError::ConnectionClosed(cc) => {
            assert_eq!(cc.error_code, quinn::TransportErrorCode::CONNECTION_REFUSED, "{err}")
        }
        other => panic!("expected CONNECTION_REFUSED, got {other}"),
    }
    assert_eq!(server.metrics().connections_rate_limited.get(), 1);

    // A STOQ endpoint gets an error saying so (single attempt: retries
    // would be refused and counted too).
    let (fourth, _) = node_with(&pki, "client-3.mesh", config_single_attempt());
    let err = within("refused connect", fourth.connect(addr(&server), "node-b.mesh"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    assert_eq!(server.metrics().connections_rate_limited.get(), 2);
    assert_eq!(server.metrics().connections_established.get(), 2);
    assert_eq!(
        server.metrics().handshake_failures.get(),
        0,
        "refused before any handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_errors_arrive_intact() {
    init_tracing();
    let pki = TestPki::new();
    let (server, _) = node(&pki, "node-b.mesh");
    server.register("missing", |_req: RpcRequest| async move {
        Err(RpcError::Application {
            code: 404,
            message: "no such block".into(),
        })
    });
    server.register("fails", |_req: RpcRequest| async move {
        Err(RpcError::Internal("disk on fire".into()))
    });
    server.register("sleepy", |_req: RpcRequest| async move {
        std::future::pending::<()>().await;
        Ok(Bytes::new())
    });
    let (client, _) = node(&pki, "node-a.mesh");
    let conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();
    let dl = Some(Duration::from_secs(5));

    assert_eq!(
        conn.call("no-such-method", Bytes::new(), dl).await.unwrap_err(),
        RpcError::UnknownMethod("no-such-method".into())
    );
    assert_eq!(
        conn.call("missing", Bytes::new(), dl).await.unwrap_err(),
        RpcError::Application {
            code: 404,
            message: "no such block".into()
        }
    );
    assert_eq!(
        conn.call("fails", Bytes::new(), dl).await.unwrap_err(),
        RpcError::Internal("disk on fire".into())
    );
    assert_eq!(
        conn.call("sleepy", Bytes::new(), Some(Duration::from_millis(200)))
            .await
            .unwrap_err(),
        RpcError::DeadlineExceeded
    );
    assert!(matches!(
        conn.call(&"x".repeat(65), Bytes::new(), dl).await,
        Err(RpcError::BadRequest(_))
    ));
    assert!(matches!(
        conn.call("", Bytes::new(), dl).await,
        Err(RpcError::BadRequest(_))
    ));
    // The connection is fine after all of these.
    echo_ok(&conn, b"ok").await;
    wait_until("errors to be counted", || server.metrics().rpc_errors.get() >= 3).await;
}

/// Sets a flag when dropped: tells whether the handler's future is gone.
struct DropGuard(Arc<AtomicBool>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn register_hanging(server: &Endpoint, started: Arc<AtomicUsize>, dropped: Arc<AtomicBool>) {
    server.register("hang", move |_req: RpcRequest| {
        let guard = DropGuard(dropped.clone());
        started.fetch_add(1, Ordering::SeqCst);
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(Bytes::new())
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_drops_the_server_side_handler() {
    init_tracing();
    let pki = TestPki::new();
    let (server, _) = node(&pki, "node-b.mesh");
    let (started, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    register_hanging(&server, started.clone(), dropped.clone());
    let (client, _) = node(&pki, "node-a.mesh");
    let conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();

    let err = conn
        .call("hang", Bytes::new(), Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!(err, RpcError::DeadlineExceeded);
    assert_eq!(started.load(Ordering::SeqCst), 1);
    wait_until("the handler future to be dropped", || dropped.load(Ordering::SeqCst)).await;
    echo_ok(&conn, b"after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_giving_up_cancels_the_handler() {
    init_tracing();
    let pki = TestPki::new();
    let (server, _) = node(&pki, "node-b.mesh");
    let (started, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    register_hanging(&server, started.clone(), dropped.clone());
    let (client, _) = node(&pki, "node-a.mesh");
    let conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();

    // A long deadline, so only the cancellation (STOP_SENDING when the
    // caller drops the call) can end the handler within the wait.
    let mut call = Box::pin(conn.call("hang", Bytes::new(), Some(Duration::from_secs(60))));
    let handler_started = wait_until("the handler to start", || started.load(Ordering::SeqCst) == 1);
    tokio::select! {
        r = &mut call => panic!("the hanging call completed: {r:?}"),
        () = handler_started => {}
    }
    assert!(!dropped.load(Ordering::SeqCst));
    drop(call);
    wait_until("the cancelled handler to be dropped", || dropped.load(Ordering::SeqCst)).await;
    assert_eq!(server.metrics().rpc_served.get(), 0, "a cancelled call is not answered");
    echo_ok(&conn, b"after").await;
}
