//! The DNS server and resolver end to end on `[::1]`: `dig` over UDP and
//! TCP, our resolver over DNS-over-QUIC with FALCON certificates, hostile
//! packets, certificate rotation and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dns_common;

use dns_common::*;
use std::net::{Ipv6Addr, SocketAddr};
use stoq::tls::{SecurityMode, TlsContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trustchain::dns::{
    DnsConfig, DnsError, DnsMetrics, DnsServer, MeshResolver, MeshZone, NodeRecord, ServiceRecord, ZoneConfig,
};

fn node(host: &str, address: &str, fp: u8) -> NodeRecord {
    NodeRecord {
        host: host.into(),
        address: address.parse().unwrap(),
        fingerprint: [fp; 32],
        services: vec![ServiceRecord {
            service: "_stoq._udp".into(),
            port: 4433,
            priority: 10,
            weight: 5,
        }],
    }
}

/// UDP and TCP on `[::1]` with ephemeral ports; DoQ only with `tls`.
async fn start(zone: &MeshZone, tls: Option<&TlsContext>, metrics: DnsMetrics) -> DnsServer {
    let config = DnsConfig {
        listen: loopback(),
        doq_listen: tls.map(|_| loopback()),
        ..Default::default()
    };
    DnsServer::start(&config, zone.clone(), tls, metrics).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_over_udp_and_tcp_follows_the_zone() {
    init_tracing();
    let zone = MeshZone::new(ZoneConfig::default()).unwrap();
    let rec = node("node-1a2b3c", "fd00::1", 0xab);
    zone.upsert(rec.clone()).unwrap();
    let metrics = DnsMetrics::default();
    let server = start(&zone, None, metrics.clone()).await;
    assert!(server.udp_addr().is_ipv6() && server.tcp_addr().is_ipv6());
    assert_eq!(server.doq_addr(), None);

    for (tcp, addr) in [(false, server.udp_addr()), (true, server.tcp_addr())] {
        let aaaa = dig(addr, tcp, "node-1a2b3c.mesh.", "AAAA").await;
        assert_eq!(aaaa.status, "NOERROR", "{}", aaaa.output);
        assert!(aaaa.flags.contains("aa"), "authoritative: {}", aaaa.output);
        assert_eq!(aaaa.data("AAAA"), vec!["fd00::1".to_string()], "{}", aaaa.output);
        let txt = dig(addr, tcp, "NODE-1a2b3c.mesh.", "TXT").await;
        assert_eq!(
            txt.data("TXT"),
            vec![format!("\"{}\"", rec.fingerprint_txt())],
            "{}",
            txt.output
        );
        let srv = dig(addr, tcp, "_stoq._udp.node-1a2b3c.mesh.", "SRV").await;
        assert_eq!(
            srv.data("SRV"),
            vec!["10 5 4433 node-1a2b3c.mesh.".to_string()],
            "{}",
            srv.output
        );
        let soa = dig(addr, tcp, "mesh.", "SOA").await;
        let soa_data = soa.data("SOA");
        assert_eq!(soa_data.len(), 1, "{}", soa.output);
        assert!(
            soa_data[0].contains(&format!(" {} ", zone.serial())),
            "serial {}: {}",
            zone.serial(),
            soa.output
        );
        assert_eq!(
            dig(addr, tcp, "mesh.", "NS").await.data("NS"),
            vec!["ns1.mesh.".to_string()]
        );
        assert_eq!(dig(addr, tcp, "nobody.mesh.", "AAAA").await.status, "NXDOMAIN");
        assert_eq!(dig(addr, tcp, "example.com.", "A").await.status, "REFUSED");
        let nodata = dig(addr, tcp, "node-1a2b3c.mesh.", "A").await;
        assert_eq!(
            (nodata.status.as_str(), nodata.answers.len()),
            ("NOERROR", 0),
            "{}",
            nodata.output
        );
    }

    // Issuance and revocation show at once, on both transports.
    zone.upsert(node("node-1a2b3c", "fd00::2", 0xcd)).unwrap();
    zone.upsert(node("node-new", "fd00::3", 1)).unwrap();
    assert_eq!(
        dig(server.udp_addr(), false, "node-1a2b3c.mesh.", "AAAA")
            .await
            .data("AAAA"),
        vec!["fd00::2"]
    );
    assert_eq!(
        dig(server.tcp_addr(), true, "node-new.mesh.", "AAAA")
            .await
            .data("AAAA"),
        vec!["fd00::3"]
    );
    assert!(zone.remove("node-1a2b3c").unwrap());
    for (tcp, addr) in [(false, server.udp_addr()), (true, server.tcp_addr())] {
        for rtype in ["AAAA", "TXT"] {
            let gone = dig(addr, tcp, "node-1a2b3c.mesh.", rtype).await;
            assert_eq!(gone.status, "NXDOMAIN", "{}", gone.output);
        }
    }

    assert!(
        metrics.queries("udp") >= 11 && metrics.queries("tcp") >= 11,
        "{metrics:?}"
    );
    assert!(metrics.responses("nxdomain") >= 6 && metrics.responses("refused") >= 2);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doq_resolver_resolves_with_falcon_certificates() {
    init_tracing();
    let pki = TestPki::new();
    let server_tls = pki.tls(&["ns1.mesh"]);
    let zone = MeshZone::new(ZoneConfig::default()).unwrap();
    let rec = node("node-1", "fd00::10", 0x42);
    zone.upsert(rec.clone()).unwrap();
    let metrics = DnsMetrics::default();
    let server = start(&zone, Some(&server_tls), metrics.clone()).await;
    let doq = server.doq_addr().unwrap();
    assert!(doq.is_ipv6() && doq.port() != 0);

    // A member, with its own certificate.
    let member = MeshResolver::new(doq, "ns1.mesh", &pki.tls(&["client-1.mesh"])).unwrap();
    assert_eq!(
        within("AAAA", member.lookup_aaaa("node-1.mesh")).await.unwrap(),
        vec!["fd00::10".parse::<Ipv6Addr>().unwrap()]
    );
    assert_eq!(
        within("TXT", member.lookup_txt("node-1.mesh.")).await.unwrap(),
        vec![rec.fingerprint_txt()]
    );
    assert_eq!(
        within("fingerprint", member.lookup_fingerprint("node-1.mesh"))
            .await
            .unwrap(),
        Some([0x42; 32])
    );
    assert_eq!(
        within("SRV", member.lookup_srv("_stoq._udp.node-1.mesh"))
            .await
            .unwrap(),
        vec![("node-1.mesh.".to_string(), 4433)]
    );
    assert_eq!(
        within("socket", member.resolve_socket("node-1.mesh", 4433))
            .await
            .unwrap(),
        "[fd00::10]:4433".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        member.resolve_socket("[::1]", 7).await.unwrap(),
        "[::1]:7".parse::<SocketAddr>().unwrap()
    );
    assert!(matches!(
        member.resolve_socket("127.0.0.1", 7).await,
        Err(DnsError::Ipv4Address { .. })
    ));
    let missing = within("NXDOMAIN", member.lookup_aaaa("nobody.mesh")).await.unwrap_err();
    assert!(matches!(missing, DnsError::NotFound { .. }), "{missing}");
    let nodata = within("NODATA", member.lookup_srv("node-1.mesh")).await.unwrap_err();
    assert!(matches!(nodata, DnsError::NoRecords { .. }), "{nodata}");

    // A client that is not a member needs only the root: no client certificate.
    let outsider = MeshResolver::with_roots(doq, "ns1.mesh", SecurityMode::PostQuantum, pki.anchors()).unwrap();
    assert_eq!(
        within("AAAA", outsider.lookup_aaaa("node-1.mesh")).await.unwrap().len(),
        1
    );

    // Revocation reaches DoQ clients once their cache is cleared.
    zone.remove("node-1").unwrap();
    outsider.clear_cache();
    let revoked = within("revoked", outsider.lookup_aaaa("node-1.mesh"))
        .await
        .unwrap_err();
    assert!(matches!(revoked, DnsError::NotFound { .. }), "{revoked}");
    assert!(metrics.queries("quic") >= 6, "{metrics:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doq_resolver_refuses_a_server_under_another_root() {
    init_tracing();
    let pki = TestPki::new();
    let other = TestPki::new();
    let server_tls = pki.tls(&["ns1.mesh"]);
    let zone = MeshZone::new(ZoneConfig::default()).unwrap();
    zone.upsert(node("node-1", "fd00::10", 1)).unwrap();
    let server = start(&zone, Some(&server_tls), DnsMetrics::default()).await;
    let doq = server.doq_addr().unwrap();

    let stranger = MeshResolver::new(doq, "ns1.mesh", &other.tls(&["client-1.mesh"])).unwrap();
    let err = within("untrusted lookup", stranger.lookup_aaaa("node-1.mesh"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DnsError::Lookup { .. }), "{text}");
    assert!(
        text.contains(&doq.to_string()) && text.contains("trusted TrustChain root"),
        "{text}"
    );
    assert!(
        text.contains("invalid peer certificate: UnknownIssuer"),
        "the handshake's cause: {text}"
    );

    // The wrong server name fails too, even under the right root.
    let misnamed = MeshResolver::with_roots(doq, "ns2.mesh", SecurityMode::PostQuantum, pki.anchors()).unwrap();
    let err = within("misnamed lookup", misnamed.lookup_aaaa("node-1.mesh"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DnsError::Lookup { .. }) && err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doq_presents_the_rotated_certificate() {
    init_tracing();
    let pki = TestPki::new();
    let server_tls = pki.tls(&["ns1.mesh"]);
    let zone = MeshZone::new(ZoneConfig::default()).unwrap();
    zone.upsert(node("node-1", "fd00::10", 1)).unwrap();
    let server = start(&zone, Some(&server_tls), DnsMetrics::default()).await;
    let doq = server.doq_addr().unwrap();
    let resolver = |name: &str| MeshResolver::with_roots(doq, name, SecurityMode::PostQuantum, pki.anchors()).unwrap();

    assert!(within("before", resolver("ns1.mesh").lookup_aaaa("node-1.mesh"))
        .await
        .is_ok());
    server_tls
        .swap_identity(pki.identity(&["ns-rotated.mesh"]), None)
        .unwrap();
    assert!(
        within("rotated name", resolver("ns-rotated.mesh").lookup_aaaa("node-1.mesh"))
            .await
            .is_ok()
    );
    let old = within("old name", resolver("ns1.mesh").lookup_aaaa("node-1.mesh")).await;
    assert!(matches!(old, Err(DnsError::Lookup { .. })), "{old:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_do_not_stop_the_server() {
    init_tracing();
    let zone = MeshZone::new(ZoneConfig::default()).unwrap();
    zone.upsert(node("node-1", "fd00::10", 1)).unwrap();
    let server = start(&zone, None, DnsMetrics::default()).await;
    let packets = malformed_packets();

    // UDP: a compression loop gets FORMERR; then everything else.
    let socket = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    socket.send_to(&pointer_loop(0x4c4f), server.udp_addr()).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = within("FORMERR", socket.recv_from(&mut buf)).await.unwrap();
    assert!(n >= 12 && buf[..2] == [0x4c, 0x4f], "{:?}", &buf[..n]);
    assert_eq!(buf[3] & 0x0f, 1, "rcode FORMERR");
    for p in &packets {
        socket.send_to(p, server.udp_addr()).await.unwrap();
    }
    assert_eq!(
        dig(server.udp_addr(), false, "node-1.mesh.", "AAAA").await.data("AAAA"),
        vec!["fd00::10"]
    );

    // TCP: each message on its own connection, plus broken length prefixes;
    // the server closes (or answers) each, and keeps accepting.
    let mut streams: Vec<Vec<u8>> = packets
        .iter()
        .map(|p| {
            let mut framed = (p.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(p);
            framed
        })
        .collect();
    streams.push(vec![0xff, 0xff, 1, 2, 3]);
    streams.push(vec![0, 0]);
    streams.push(vec![0x12]);
    for bytes in &streams {
        let mut tcp = tokio::net::TcpStream::connect(server.tcp_addr()).await.unwrap();
        tcp.write_all(bytes).await.unwrap();
        tcp.shutdown().await.unwrap();
        let mut reply = Vec::new();
        let _ = within("server to close the connection", tcp.read_to_end(&mut reply)).await;
    }
    assert_eq!(
        dig(server.tcp_addr(), true, "node-1.mesh.", "AAAA").await.data("AAAA"),
        vec!["fd00::10"]
    );
    assert_eq!(
        dig(server.udp_addr(), false, "node-1.mesh.", "TXT").await.status,
        "NOERROR"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_are_clear_and_shutdown_frees_the_ports() {
    init_tracing();
    let zone = MeshZone::new(ZoneConfig::default()).unwrap();
    let v4 = DnsConfig {
        listen: "127.0.0.1:5353".parse().unwrap(),
        doq_listen: None,
        ..Default::default()
    };
    let err = DnsServer::start(&v4, zone.clone(), None, DnsMetrics::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "listen 127.0.0.1:5353 is IPv4: the stack is IPv6-only, use [::1]:5353"
    );
    let no_cert = DnsConfig {
        listen: loopback(),
        doq_listen: Some(loopback()),
        ..Default::default()
    };
    let err = DnsServer::start(&no_cert, zone.clone(), None, DnsMetrics::default())
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::DoqWithoutCertificate(_)), "{err}");

    let server = start(&zone, None, DnsMetrics::default()).await;
    let (udp, tcp) = (server.udp_addr(), server.tcp_addr());
    // A port in use is reported with the address.
    let taken = DnsConfig {
        listen: udp,
        doq_listen: None,
        ..Default::default()
    };
    let err = DnsServer::start(&taken, zone.clone(), None, DnsMetrics::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DnsError::Bind { .. }) && err.to_string().contains(&udp.to_string()),
        "{err}"
    );
    assert_eq!(dig(udp, false, "mesh.", "SOA").await.status, "NOERROR");
    within("shutdown", server.shutdown()).await.unwrap();
    // The sockets are closed; a child process another test is forking
    // may hold a copy of a descriptor for an instant, hence the retries.
    wait_until("the UDP port to be free", || std::net::UdpSocket::bind(udp).is_ok()).await;
    wait_until("the TCP port to be free", || std::net::TcpListener::bind(tcp).is_ok()).await;
}
