//! The member's view of the DNS zone: one record per enrolled name, kept in
//! the store with the batch that issued or revoked it (or with the
//! replication step that brought it from another member), and pushed into
//! the running DNS server.
//!
//! Every member ends up with the same records whatever order updates reach
//! it in: for one name, the record of the certificate with the latest
//! `notBefore` wins (ties broken by issuing log, then serial). A revoked
//! certificate leaves a *tombstone* for its names, ranked just above its
//! own record: the name is withdrawn, and an older certificate for it
//! (one a member that was down learns only later) cannot come back, until
//! a newer certificate is issued. Records and tombstones are swept when
//! their certificate expires.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::Mutex;

use stoq::pki::Certificate;

use crate::bundle::TrustBundle;
use crate::dns::{MeshZone, NodeRecord, ServiceRecord, ZoneConfig};
use crate::error::WireError;
use crate::request::{read_services, write_services, Service};
use crate::revocation::RevocationStatement;
use crate::store::Store;
use crate::time::to_ms;
use crate::wire::{Reader, Writer};
use crate::Result;

/// What the zone publishes for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameRecord {
    pub(crate) address: Ipv6Addr,
    pub(crate) fingerprint: [u8; 32],
    pub(crate) issuer_log: u16,
    pub(crate) serial: Vec<u8>,
    pub(crate) services: Vec<Service>,
    /// The certificate's validity, ms since the epoch.
    pub(crate) not_before_ms: u64,
    pub(crate) not_after_ms: u64,
    /// A tombstone: the certificate was revoked; nothing is published.
    pub(crate) revoked: bool,
}

impl NameRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.fixed(&self.address.octets())
            .fixed(&self.fingerprint)
            .u16(self.issuer_log)
            .bytes8(&self.serial);
        write_services(&mut w, &self.services);
        w.u64(self.not_before_ms)
            .u64(self.not_after_ms)
            .u8(u8::from(self.revoked));
        w.finish()
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "zone record");
        let address = Ipv6Addr::from(r.array::<16>()?);
        let fingerprint = r.array()?;
        let issuer_log = r.u16()?;
        let serial = r.bytes8(20)?.to_vec();
        let services = read_services(&mut r)?;
        let (not_before_ms, not_after_ms) = (r.u64()?, r.u64()?);
        let revoked = match r.u8()? {
            0 => false,
            1 => true,
            other => {
                return Err(WireError {
                    what: "zone record",
                    reason: format!("revoked flag {other}"),
                })
            }
        };
        r.finish()?;
        Ok(NameRecord {
            address,
            fingerprint,
            issuer_log,
            serial,
            services,
            not_before_ms,
            not_after_ms,
            revoked,
        })
    }

    /// The records a certificate sets: one per name.
    pub(crate) fn for_certificate(
        cert: &Certificate,
        issuer_log: u16,
        address: Ipv6Addr,
        services: &[Service],
    ) -> Vec<(String, NameRecord)> {
        let fingerprint = cert.fingerprint();
        cert.dns_names()
            .into_iter()
            .map(|name| {
                (
                    name,
                    NameRecord {
                        address,
                        fingerprint,
                        issuer_log,
                        serial: cert.serial().to_vec(),
                        services: services.to_vec(),
                        not_before_ms: to_ms(cert.not_before()),
                        not_after_ms: to_ms(cert.not_after()),
                        revoked: false,
                    },
                )
            })
            .collect()
    }

    /// Order between two records for one name: the greater one is kept.
    fn rank(&self) -> (u64, u16, &[u8], bool) {
        (self.not_before_ms, self.issuer_log, &self.serial, self.revoked)
    }

    /// The tombstone this record leaves when its certificate is revoked.
    pub(crate) fn tombstone(&self) -> NameRecord {
        NameRecord {
            revoked: true,
            ..self.clone()
        }
    }
}

/// The zone: names to records, mirrored into the DNS server's zone.
pub(crate) struct Zone {
    records: Mutex<HashMap<String, NameRecord>>,
    dns: MeshZone,
    /// Held from deciding which records win until they are stored and
    /// applied, so the pipeline and replication never interleave.
    writer: tokio::sync::Mutex<()>,
}

/// Exclusive right to change the zone; see [`Zone::update`].
pub(crate) struct ZoneUpdate<'a> {
    zone: &'a Zone,
    _writer: tokio::sync::MutexGuard<'a, ()>,
}

fn dns_record(host: &str, r: &NameRecord) -> NodeRecord {
    NodeRecord {
        host: format!("{host}."),
        address: r.address,
        fingerprint: r.fingerprint,
        services: r
            .services
            .iter()
            .map(|s| ServiceRecord {
                service: s.name.clone(),
                port: s.port,
                priority: 0,
                weight: 0,
            })
            .collect(),
    }
}

impl Zone {
    /// Loads the zone from the store.
    pub(crate) fn restore(bundle: &TrustBundle, store: &Store) -> Result<Self> {
        let mut records = HashMap::new();
        for (host, rec) in store.zone()? {
            records.insert(host, NameRecord::decode(&rec)?);
        }
        let dns = MeshZone::new(ZoneConfig {
            origin: bundle.zone.clone(),
            ..ZoneConfig::default()
        })?;
        let (ok, bad): (Vec<_>, Vec<_>) = records
            .iter()
            .filter(|(_, r)| !r.revoked)
            .map(|(h, r)| dns_record(h, r))
            .partition(|r| dns.upsert(r.clone()).is_ok());
        if !bad.is_empty() {
            tracing::warn!(
                published = ok.len(),
                refused = bad.len(),
                "some stored names are not publishable in DNS"
            );
        }
        Ok(Zone {
            records: Mutex::new(records),
            dns,
            writer: tokio::sync::Mutex::new(()),
        })
    }

    /// The DNS zone the server answers from.
    pub(crate) fn dns(&self) -> &MeshZone {
        &self.dns
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, NameRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tombstones a revocation leaves: one per name the revoked
    /// certificate holds now.
    pub(crate) fn tombstones_for(&self, st: &RevocationStatement) -> Vec<(String, NameRecord)> {
        self.lock()
            .iter()
            .filter(|(_, r)| !r.revoked && r.issuer_log == st.issuer_log && r.serial == st.serial)
            .map(|(h, r)| (h.clone(), r.tombstone()))
            .collect()
    }

    /// Takes the right to change the zone.
    pub(crate) async fn update(&self) -> ZoneUpdate<'_> {
        ZoneUpdate {
            zone: self,
            _writer: self.writer.lock().await,
        }
    }

    /// Withdraws the names of a revoked certificate (leaving tombstones),
    /// in memory and in the store.
    pub(crate) async fn revoked(&self, st: &RevocationStatement, store: &Store) {
        let update = self.update().await;
        let tombstones = self.tombstones_for(st);
        if tombstones.is_empty() {
            return;
        }
        let encoded: Vec<_> = tombstones.iter().map(|(h, r)| (h.clone(), r.encode())).collect();
        if let Err(e) = store.put_zone_records(&encoded) {
            tracing::warn!(error = %e, "storing revoked names failed");
            return;
        }
        update.apply(&tombstones, &[]);
    }

    /// Drops the names whose certificate expired before `now_ms`.
    pub(crate) async fn expire(&self, now_ms: u64, store: &Store) -> usize {
        let update = self.update().await;
        let hosts: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, r)| r.not_after_ms < now_ms)
            .map(|(h, _)| h.clone())
            .collect();
        if hosts.is_empty() {
            return 0;
        }
        if let Err(e) = store.remove_zone_hosts(&hosts) {
            tracing::warn!(error = %e, "removing expired names from the stored zone failed");
            return 0;
        }
        update.apply(&[], &hosts);
        hosts.len()
    }

    /// Number of published names.
    pub(crate) fn len(&self) -> usize {
        self.lock().values().filter(|r| !r.revoked).count()
    }
}

impl ZoneUpdate<'_> {
    /// The records of `set` that win over what the zone holds and over
    /// each other; records already present are left out.
    pub(crate) fn winners(&self, set: Vec<(String, NameRecord)>) -> Vec<(String, NameRecord)> {
        let current = self.zone.lock();
        let mut best: HashMap<String, NameRecord> = HashMap::new();
        for (host, rec) in set {
            let beats = |other: &NameRecord| rec.rank() > other.rank();
            if current.get(&host).is_some_and(|c| !beats(c)) || best.get(&host).is_some_and(|b| !beats(b)) {
                continue;
            }
            best.insert(host, rec);
        }
        let mut out: Vec<_> = best.into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Applies changes already stored, with one DNS publication.
    pub(crate) fn apply(&self, set: &[(String, NameRecord)], remove: &[String]) {
        let mut z = self.zone.lock();
        for h in remove {
            z.remove(h);
        }
        for (h, r) in set {
            z.insert(h.clone(), r.clone());
        }
        drop(z);
        let remove: Vec<String> = remove
            .iter()
            .chain(set.iter().filter(|(_, r)| r.revoked).map(|(h, _)| h))
            .map(|h| format!("{h}."))
            .collect();
        let upsert = set
            .iter()
            .filter(|(_, r)| !r.revoked)
            .map(|(h, r)| dns_record(h, r))
            .collect();
        for (host, e) in self.zone.dns.apply(&remove, upsert) {
            tracing::warn!(%host, error = %e, "name not published in DNS");
        }
    }
}
