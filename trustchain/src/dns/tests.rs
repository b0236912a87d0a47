//! Unit tests of the DNS module: zone edits, name validation, configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hickory_server::proto::rr::{LowerName, Name, RData, RecordType};
use hickory_server::zone_handler::{LookupOptions, ZoneHandler};
use std::net::{Ipv6Addr, SocketAddr};

use super::*;

fn node(host: &str, last: u16) -> NodeRecord {
    NodeRecord {
        host: host.into(),
        address: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last),
        fingerprint: [last as u8; 32],
        services: vec![ServiceRecord {
            service: "_stoq._udp".into(),
            port: 4433,
            priority: 10,
            weight: 5,
        }],
    }
}

fn zone() -> MeshZone {
    MeshZone::new(ZoneConfig::default()).unwrap()
}

/// The rdata the published snapshot holds for `name`/`rtype`.
async fn published(zone: &MeshZone, name: &str, rtype: RecordType) -> Vec<RData> {
    let name = LowerName::new(&Name::from_ascii(name).unwrap());
    let snapshot = zone.snapshot();
    match snapshot
        .lookup(&name, rtype, None, LookupOptions::default())
        .await
        .map_result()
    {
        Some(Ok(lookup)) => lookup
            .iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| r.data.clone())
            .collect(),
        _ => vec![],
    }
}

#[test]
fn new_zone_has_origin_and_a_serial() {
    let z = zone();
    assert_eq!(z.origin(), "mesh.");
    assert!(z.serial() > 0);
    assert!(z.records().is_empty());
}

#[test]
fn upsert_publishes_and_bumps_the_serial() {
    let z = zone();
    let s0 = z.serial();
    z.upsert(node("node-1a2b3c", 1)).unwrap();
    assert_eq!(z.serial(), s0.wrapping_add(1));
    let records = z.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].host, "node-1a2b3c.mesh.");
    assert_eq!(records[0].address, node("x", 1).address);
    assert_eq!(z.get("node-1a2b3c").unwrap(), Some(records[0].clone()));
}

#[test]
fn relative_absolute_and_mixed_case_names_are_the_same_host() {
    let z = zone();
    z.upsert(node("node-1", 1)).unwrap();
    z.upsert(node("NODE-1.mesh.", 2)).unwrap();
    z.upsert(node("node-1.Mesh", 3)).unwrap();
    let records = z.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].address, node("x", 3).address);
    assert_eq!(z.fqdn("a.b").unwrap(), "a.b.mesh.");
}

#[test]
fn remove_withdraws_and_reports_whether_it_did() {
    let z = zone();
    z.upsert(node("node-1", 1)).unwrap();
    z.upsert(node("node-2", 2)).unwrap();
    let s = z.serial();
    assert!(z.remove("node-1.mesh.").unwrap());
    assert_eq!(z.serial(), s.wrapping_add(1));
    assert!(!z.remove("node-1").unwrap());
    assert_eq!(z.serial(), s.wrapping_add(1), "removing nothing keeps the serial");
    assert_eq!(z.records().len(), 1);
    assert_eq!(z.records()[0].host, "node-2.mesh.");
}

#[test]
fn names_outside_the_zone_or_malformed_are_refused() {
    let z = zone();
    for host in ["node.example.", "mesh.example.", "other."] {
        let err = z.upsert(node(host, 1)).unwrap_err();
        assert!(matches!(err, DnsError::OutsideZone { .. }), "{host}: {err}");
        assert!(err.to_string().contains("outside the zone mesh."), "{err}");
    }
    assert!(matches!(z.remove("x.example."), Err(DnsError::OutsideZone { .. })));
    let long_label = "a".repeat(64);
    let long_name = vec!["abcdefghij"; 25].join(".");
    for host in [
        "mesh.",
        "mesh",
        "",
        ".",
        "-bad",
        "bad-",
        "a..b",
        "x_y",
        "_stoq",
        "a b",
        "é",
        &long_label,
        &long_name,
    ] {
        let err = z.upsert(node(host, 1)).unwrap_err();
        assert!(matches!(err, DnsError::InvalidName { .. }), "{host:?}: {err}");
    }
    assert!(z.records().is_empty());
}

#[test]
fn invalid_records_are_refused() {
    let z = zone();
    for address in [
        Ipv6Addr::UNSPECIFIED,
        "ff02::1".parse().unwrap(),
        "::ffff:10.0.0.1".parse().unwrap(),
    ] {
        let err = z
            .upsert(NodeRecord {
                address,
                ..node("n", 1)
            })
            .unwrap_err();
        assert!(matches!(err, DnsError::InvalidRecord { .. }), "{address}: {err}");
    }
    for (service, port) in [
        ("stoq._udp", 1),
        ("_stoq.udp", 1),
        ("", 1),
        ("_stoq._udp", 0),
        ("_-x._udp", 1),
    ] {
        let mut record = node("n", 1);
        record.services[0].service = service.into();
        record.services[0].port = port;
        let err = z.upsert(record).unwrap_err();
        assert!(
            matches!(err, DnsError::InvalidRecord { .. }),
            "{service:?}/{port}: {err}"
        );
    }
}

#[test]
fn upsert_all_is_all_or_nothing() {
    let z = zone();
    let s = z.serial();
    let err = z.upsert_all([node("a", 1), node("b.example.", 2)]).unwrap_err();
    assert!(matches!(err, DnsError::OutsideZone { .. }));
    assert!(z.records().is_empty());
    assert_eq!(z.serial(), s);
    z.upsert_all((1..=50).map(|i| node(&format!("node-{i}"), i))).unwrap();
    assert_eq!(z.records().len(), 50);
    assert_eq!(z.serial(), s.wrapping_add(1), "one bump for the batch");
}

#[tokio::test]
async fn snapshot_serves_aaaa_txt_srv_and_follows_updates() {
    let z = zone();
    let rec = node("node-1", 7);
    z.upsert(rec.clone()).unwrap();
    assert_eq!(
        published(&z, "node-1.mesh.", RecordType::AAAA).await,
        vec![RData::AAAA(rec.address.into())]
    );
    let txt = published(&z, "node-1.mesh.", RecordType::TXT).await;
    let RData::TXT(txt) = &txt[0] else { panic!("{txt:?}") };
    let text = String::from_utf8(txt.txt_data[0].to_vec()).unwrap();
    assert_eq!(text, format!("tc-fp={}", "07".repeat(32)));
    assert_eq!(NodeRecord::parse_fingerprint_txt(&text), Some(rec.fingerprint));
    let srv = published(&z, "_stoq._udp.node-1.mesh.", RecordType::SRV).await;
    let RData::SRV(srv) = &srv[0] else { panic!("{srv:?}") };
    assert_eq!((srv.port, srv.priority, srv.weight), (4433, 10, 5));
    assert_eq!(srv.target.to_ascii(), "node-1.mesh.");
    let soa = published(&z, "mesh.", RecordType::SOA).await;
    let RData::SOA(soa) = &soa[0] else { panic!("{soa:?}") };
    assert_eq!(soa.serial, z.serial());
    assert_eq!(soa.rname.to_ascii(), "hostmaster.mesh.");
    assert_eq!(published(&z, "mesh.", RecordType::NS).await.len(), 1);

    // Services change with the record; the old SRV set goes.
    let moved = NodeRecord {
        services: vec![],
        address: "fd00::99".parse().unwrap(),
        ..rec
    };
    z.upsert(moved.clone()).unwrap();
    assert_eq!(
        published(&z, "node-1.mesh.", RecordType::AAAA).await,
        vec![RData::AAAA(moved.address.into())]
    );
    assert!(published(&z, "_stoq._udp.node-1.mesh.", RecordType::SRV)
        .await
        .is_empty());
    z.remove("node-1").unwrap();
    assert!(published(&z, "node-1.mesh.", RecordType::AAAA).await.is_empty());
    assert!(published(&z, "node-1.mesh.", RecordType::TXT).await.is_empty());
}

#[test]
fn fingerprint_txt_parsing_is_strict() {
    assert_eq!(
        NodeRecord::parse_fingerprint_txt(&format!("tc-fp={}", "ab".repeat(32))),
        Some([0xab; 32])
    );
    for bad in [
        "",
        "tc-fp=",
        "tc-fp=abc",
        &format!("tc-fp={}", "zz".repeat(32)),
        &format!("fp={}", "ab".repeat(32)),
    ] {
        assert_eq!(NodeRecord::parse_fingerprint_txt(bad), None, "{bad}");
    }
    assert_eq!(
        NodeRecord::parse_fingerprint_txt(&format!("tc-fp={}é", "a".repeat(62))),
        None
    );
}

#[test]
fn zone_config_is_checked() {
    let cfg: ZoneConfig =
        toml::from_str("origin = \"example.net.\"\nttl = 30\nadmin_email = \"ops@example.net\"").unwrap();
    let z = MeshZone::new(cfg).unwrap();
    assert_eq!(z.origin(), "example.net.");
    assert!(
        toml::from_str::<ZoneConfig>("origni = \"mesh.\"").is_err(),
        "unknown keys are refused"
    );
    let bad = [
        ZoneConfig {
            origin: ".".into(),
            ..Default::default()
        },
        ZoneConfig {
            origin: "me sh.".into(),
            ..Default::default()
        },
        ZoneConfig {
            ttl: 700_000,
            ..Default::default()
        },
        ZoneConfig {
            ns_name: "ns.example.".into(),
            ns_address: Some("fd00::53".parse().unwrap()),
            ..Default::default()
        },
        ZoneConfig {
            ns_address: Some(Ipv6Addr::UNSPECIFIED),
            ..Default::default()
        },
        ZoneConfig {
            admin_email: "first.last@mesh".into(),
            ..Default::default()
        },
    ];
    for cfg in bad {
        assert!(MeshZone::new(cfg.clone()).is_err(), "{cfg:?}");
    }
}

#[test]
fn name_server_address_is_reserved() {
    let cfg = ZoneConfig {
        ns_address: Some("fd00::53".parse().unwrap()),
        ..Default::default()
    };
    let z = MeshZone::new(cfg).unwrap();
    assert!(matches!(z.upsert(node("ns1", 1)), Err(DnsError::InvalidRecord { .. })));
    // Without ns_address, a node may be the name server.
    zone().upsert(node("ns1", 1)).unwrap();
}

#[test]
fn ipv4_addresses_are_refused_with_the_ipv6_to_use() {
    let cases = [
        (
            "127.0.0.1:5353",
            "address 127.0.0.1:5353 is IPv4: the stack is IPv6-only, use [::1]:5353",
        ),
        ("0.0.0.0:53", "use [::]:53"),
        ("[::ffff:127.0.0.1]:5353", "use [::1]:5353"),
        ("192.0.2.1:53", "use an IPv6 address"),
    ];
    for (addr, expected) in cases {
        let cfg = DnsConfig {
            listen: addr.parse().unwrap(),
            ..Default::default()
        };
        let err = cfg.validate().unwrap_err();
        assert!(matches!(err, DnsError::Ipv4Address { .. }), "{addr}: {err}");
        let text = err.to_string().replace("listen ", "address ");
        assert!(text.contains(expected), "{addr}: {text}");
    }
    let cfg = DnsConfig {
        doq_listen: Some("127.0.0.1:853".parse().unwrap()),
        ..Default::default()
    };
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .starts_with("doq_listen 127.0.0.1:853 is IPv4"));
}

#[test]
fn dns_config_defaults_files_and_limits() {
    let cfg = DnsConfig::default();
    cfg.validate().unwrap();
    assert_eq!(cfg.listen, "[::1]:5353".parse::<SocketAddr>().unwrap());
    assert_eq!(cfg.doq_listen, Some("[::1]:8853".parse().unwrap()));
    let off: DnsConfig = toml::from_str("doq_listen = \"off\"").unwrap();
    assert_eq!(off.doq_listen, None);
    let text = toml::to_string(&off).unwrap();
    assert!(text.contains("doq_listen = \"off\""), "{text}");
    assert_eq!(toml::from_str::<DnsConfig>(&text).unwrap(), off);
    let set: DnsConfig = toml::from_str("listen = \"[::]:53\"\ndoq_listen = \"[::]:853\"").unwrap();
    assert_eq!(set.doq_listen, Some("[::]:853".parse().unwrap()));
    assert!(toml::from_str::<DnsConfig>("doq_listen = \"nope\"").is_err());
    assert!(
        toml::from_str::<DnsConfig>("tcp_timeout = 5").is_err(),
        "unknown keys are refused"
    );
    for bad in [
        DnsConfig {
            tcp_timeout_ms: 0,
            ..Default::default()
        },
        DnsConfig {
            doq_timeout_ms: 10_000_000,
            ..Default::default()
        },
        DnsConfig {
            doq_listen: Some("[::1]:5353".parse().unwrap()),
            ..Default::default()
        },
    ] {
        assert!(matches!(bad.validate(), Err(DnsError::Config(_))), "{bad:?}");
    }
}

#[test]
fn metrics_register_and_count() {
    use hickory_server::net::xfer::Protocol;
    use hickory_server::proto::op::ResponseCode;
    let metrics = DnsMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    metrics.query(Protocol::Udp);
    metrics.query(Protocol::Quic);
    metrics.response(ResponseCode::NXDomain);
    assert_eq!(metrics.queries("udp"), 1);
    assert_eq!(metrics.queries("QUIC"), 1);
    assert_eq!(metrics.queries("tcp"), 0);
    assert_eq!(metrics.responses("nxdomain"), 1);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("trustchain_dns_queries_total{protocol=\"udp\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("trustchain_dns_responses_total{rcode=\"nxdomain\"} 1"),
        "{text}"
    );
}
