//! The member's view of the DNS zone: one record per enrolled name, kept in
//! the store with the batch that issued or revoked it, and pushed into the
//! running DNS server.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::Mutex;

use stoq::pki::Certificate;

use crate::bundle::TrustBundle;
use crate::dns::{MeshZone, NodeRecord, ServiceRecord, ZoneConfig};
use crate::error::WireError;
use crate::request::Service;
use crate::revocation::RevocationStatement;
use crate::store::Store;
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
}

impl NameRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.fixed(&self.address.octets())
            .fixed(&self.fingerprint)
            .u16(self.issuer_log)
            .bytes8(&self.serial);
        w.u8(self.services.len() as u8);
        for s in &self.services {
            w.str8(&s.name).u16(s.port);
        }
        w.finish()
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "zone record");
        let address = Ipv6Addr::from(r.array::<16>()?);
        let fingerprint = r.array()?;
        let issuer_log = r.u16()?;
        let serial = r.bytes8(20)?.to_vec();
        let n = r.count(crate::request::MAX_SERVICES)?;
        let mut services = Vec::with_capacity(n);
        for _ in 0..n {
            services.push(Service {
                name: r.str8(63)?,
                port: r.u16()?,
            });
        }
        r.finish()?;
        Ok(NameRecord {
            address,
            fingerprint,
            issuer_log,
            serial,
            services,
        })
    }
}

/// The zone: names to records, mirrored into the DNS server's zone.
pub(crate) struct Zone {
    records: Mutex<HashMap<String, NameRecord>>,
    dns: MeshZone,
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
        })
    }

    /// The DNS zone the server answers from.
    pub(crate) fn dns(&self) -> &MeshZone {
        &self.dns
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, NameRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The records a new certificate sets: one per name.
    pub(crate) fn records_for(
        cert: &Certificate,
        issuer_log: u16,
        address: Ipv6Addr,
        services: &[Service],
    ) -> Vec<(String, NameRecord)> {
        cert.dns_names()
            .into_iter()
            .map(|name| {
                (
                    name,
                    NameRecord {
                        address,
                        fingerprint: cert.fingerprint(),
                        issuer_log,
                        serial: cert.serial().to_vec(),
                        services: services.to_vec(),
                    },
                )
            })
            .collect()
    }

    /// Hosts whose record belongs to the revoked certificate.
    pub(crate) fn hosts_of(&self, st: &RevocationStatement) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, r)| r.issuer_log == st.issuer_log && r.serial == st.serial)
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// Applies committed changes.
    pub(crate) fn apply(&self, set: &[(String, NameRecord)], remove: &[String]) {
        let mut z = self.lock();
        for h in remove {
            z.remove(h);
            let _ = self.dns.remove(&format!("{h}."));
        }
        for (h, r) in set {
            z.insert(h.clone(), r.clone());
            if let Err(e) = self.dns.upsert(dns_record(h, r)) {
                tracing::warn!(host = %h, error = %e, "name not published in DNS");
            }
        }
    }

    /// Drops the names of a certificate another member revoked, in memory
    /// and in the store.
    pub(crate) fn revoked(&self, st: &RevocationStatement, store: &Store) {
        let hosts = self.hosts_of(st);
        if let Err(e) = store.remove_zone_hosts(&hosts) {
            tracing::warn!(error = %e, "removing revoked names from the stored zone failed");
        }
        self.apply(&[], &hosts);
    }

    /// Number of names.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
