//! The mesh zone: node records in, immutable hickory snapshots out.
//!
//! Writers (the CA) serialise on a mutex, edit the record map and publish a
//! fresh `InMemoryZoneHandler` through an `ArcSwap`; readers (queries) load
//! the current snapshot without taking any lock, so the zone answers while
//! it is being updated and every answer comes from one consistent version.

use arc_swap::ArcSwap;
use hickory_server::proto::rr::rdata::{AAAA, NS, SOA, SRV, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, RecordSet, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, ZoneType};
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::records::{
    build_name, check_address, check_service, is_strictly_inside, mailbox_name, qualify, MAX_TTL, SOA_EXPIRE,
    SOA_REFRESH, SOA_RETRY,
};
use super::{DnsError, NodeRecord, ServiceRecord, ZoneConfig};

struct ZoneState {
    serial: u32,
    nodes: BTreeMap<LowerName, NodeRecord>,
    records: BTreeMap<RrKey, Arc<RecordSet>>,
}

struct ZoneInner {
    origin: Name,
    origin_lower: LowerName,
    ttl: u32,
    ns_name: Name,
    ns_address: Option<Ipv6Addr>,
    rname: Name,
    state: Mutex<ZoneState>,
    published: ArcSwap<InMemoryZoneHandler>,
}

/// The mesh zone, shared by the CA (writer) and the DNS server (reader).
/// Cloning gives another handle to the same zone.
#[derive(Clone)]
pub struct MeshZone {
    inner: Arc<ZoneInner>,
}

impl std::fmt::Debug for MeshZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshZone")
            .field("origin", &self.inner.origin.to_ascii())
            .field("serial", &self.serial())
            .finish_non_exhaustive()
    }
}

impl MeshZone {
    /// An empty zone (SOA and NS only). The first serial is the current
    /// UNIX time, so a restarted server never goes back in serials.
    pub fn new(config: ZoneConfig) -> Result<Self, DnsError> {
        let origin_text = config.origin.to_ascii_lowercase();
        let origin_body = origin_text.strip_suffix('.').unwrap_or(&origin_text);
        if origin_body.is_empty() {
            return Err(DnsError::Config(
                "origin must not be the root: use a zone such as \"mesh.\"".into(),
            ));
        }
        let origin = build_name(&config.origin, origin_body)?;
        if config.ttl > MAX_TTL {
            return Err(DnsError::Config(format!(
                "ttl {} is above the maximum {MAX_TTL}",
                config.ttl
            )));
        }
        let ns_name = qualify(&origin, origin_body, &config.ns_name)?;
        if config.ns_address.is_some() && !is_strictly_inside(&origin, &ns_name) {
            return Err(DnsError::Config(format!(
                "ns_address is an address record for ns_name, which must then be inside {origin} (it is {ns_name})"
            )));
        }
        if let Some(addr) = config.ns_address {
            check_address(&addr).map_err(|reason| DnsError::Config(format!("ns_address: {reason}")))?;
        }
        let rname = mailbox_name(&config.admin_email)?;
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1);
        let inner = ZoneInner {
            origin_lower: LowerName::new(&origin),
            origin,
            ttl: config.ttl,
            ns_name,
            ns_address: config.ns_address,
            rname,
            state: Mutex::new(ZoneState {
                serial,
                nodes: BTreeMap::new(),
                records: BTreeMap::new(),
            }),
            published: ArcSwap::from_pointee(InMemoryZoneHandler::empty(
                Name::root(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
            )),
        };
        let zone = MeshZone { inner: Arc::new(inner) };
        {
            let mut state = zone.lock();
            zone.apex_records(&mut state);
            zone.publish(&state);
        }
        Ok(zone)
    }

    /// Publishes `record`, replacing that host's AAAA, TXT and SRV records,
    /// and bumps the SOA serial. Refuses names outside the zone.
    pub fn upsert(&self, record: NodeRecord) -> Result<(), DnsError> {
        self.upsert_all([record])
    }

    /// Like [`MeshZone::upsert`] for many records with one serial bump and
    /// one publication (loading the zone at start-up). Either every record
    /// is valid and published, or none is.
    pub fn upsert_all(&self, records: impl IntoIterator<Item = NodeRecord>) -> Result<(), DnsError> {
        let checked = records
            .into_iter()
            .map(|r| self.canonical(r))
            .collect::<Result<Vec<_>, _>>()?;
        if checked.is_empty() {
            return Ok(());
        }
        let mut state = self.lock();
        for (host, record) in checked {
            self.remove_host(&mut state, &host);
            for set in self.node_rrsets(&host, &record) {
                let key = RrKey::new(LowerName::new(set.name()), set.record_type());
                state.records.insert(key, Arc::new(set));
            }
            state.nodes.insert(LowerName::new(&host), record);
        }
        self.commit(&mut state);
        Ok(())
    }

    /// Withdraws the `remove` hosts and publishes the `upsert` records in one
    /// publication with one serial bump (a CA batch touches many names, and
    /// each publication copies the zone). Records that are not publishable
    /// are skipped and returned with the reason; the rest apply.
    pub fn apply(&self, remove: &[String], upsert: Vec<NodeRecord>) -> Vec<(String, DnsError)> {
        let mut refused = Vec::new();
        let mut checked = Vec::with_capacity(upsert.len());
        for r in upsert {
            let host = r.host.clone();
            match self.canonical(r) {
                Ok(c) => checked.push(c),
                Err(e) => refused.push((host, e)),
            }
        }
        let mut state = self.lock();
        let mut changed = false;
        for h in remove {
            if let Ok(name) = self.host_name(h) {
                changed |= self.remove_host(&mut state, &name);
            }
        }
        for (host, record) in checked {
            self.remove_host(&mut state, &host);
            for set in self.node_rrsets(&host, &record) {
                let key = RrKey::new(LowerName::new(set.name()), set.record_type());
                state.records.insert(key, Arc::new(set));
            }
            state.nodes.insert(LowerName::new(&host), record);
            changed = true;
        }
        if changed {
            self.commit(&mut state);
        }
        refused
    }

    /// Withdraws a host's records (on revocation). Returns whether the host
    /// was in the zone; the serial changes only if it was.
    pub fn remove(&self, host: &str) -> Result<bool, DnsError> {
        let name = self.host_name(host)?;
        let mut state = self.lock();
        let removed = self.remove_host(&mut state, &name);
        if removed {
            self.commit(&mut state);
        }
        Ok(removed)
    }

    /// The published node records, in DNS canonical name order.
    pub fn records(&self) -> Vec<NodeRecord> {
        self.lock().nodes.values().cloned().collect()
    }

    /// The record of one host, if published.
    pub fn get(&self, host: &str) -> Result<Option<NodeRecord>, DnsError> {
        let name = self.host_name(host)?;
        Ok(self.lock().nodes.get(&LowerName::new(&name)).cloned())
    }

    /// The current SOA serial.
    pub fn serial(&self) -> u32 {
        self.lock().serial
    }

    /// The zone's origin, fully qualified (`mesh.`).
    pub fn origin(&self) -> String {
        self.inner.origin.to_ascii()
    }

    /// The fully qualified, lowercase name a host would be published under.
    pub fn fqdn(&self, host: &str) -> Result<String, DnsError> {
        Ok(self.host_name(host)?.to_ascii())
    }

    pub(crate) fn origin_lower(&self) -> &LowerName {
        &self.inner.origin_lower
    }

    /// The snapshot queries are answered from.
    pub(crate) fn snapshot(&self) -> Arc<InMemoryZoneHandler> {
        self.inner.published.load_full()
    }

    fn lock(&self) -> MutexGuard<'_, ZoneState> {
        // Nothing panics while holding the lock; were a writer to, the next
        // commit would republish the whole map, so the lock stays usable.
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn host_name(&self, host: &str) -> Result<Name, DnsError> {
        let origin = &self.inner.origin;
        let origin_text = origin.to_ascii();
        let body = origin_text.strip_suffix('.').unwrap_or(&origin_text);
        if host.split('.').any(|label| label.starts_with('_')) {
            return Err(DnsError::InvalidName {
                name: host.into(),
                reason: "node labels cannot start with '_' (reserved for services such as _stoq._udp)".into(),
            });
        }
        let name = qualify(origin, body, host)?;
        if name == *origin {
            return Err(DnsError::InvalidName {
                name: host.into(),
                reason: format!("{origin} is the zone apex, not a node name"),
            });
        }
        if !is_strictly_inside(origin, &name) {
            return Err(DnsError::OutsideZone {
                name: name.to_ascii(),
                origin: origin_text,
            });
        }
        Ok(name)
    }

    fn canonical(&self, record: NodeRecord) -> Result<(Name, NodeRecord), DnsError> {
        let host = self.host_name(&record.host)?;
        let invalid = |reason: String| DnsError::InvalidRecord {
            host: host.to_ascii(),
            reason,
        };
        check_address(&record.address).map_err(|r| invalid(format!("address: {r}")))?;
        if self.inner.ns_address.is_some() && host == self.inner.ns_name {
            return Err(invalid(
                "this is the name server's name, which has its own address (ns_address)".into(),
            ));
        }
        let mut services = Vec::with_capacity(record.services.len());
        for s in record.services {
            let service = s.service.to_ascii_lowercase();
            check_service(&service).map_err(|r| invalid(format!("service {:?}: {r}", s.service)))?;
            if s.port == 0 {
                return Err(invalid(format!("service {service}: port 0")));
            }
            build_name(
                &s.service,
                &format!("{service}.{}", host.to_ascii().trim_end_matches('.')),
            )?;
            services.push(ServiceRecord { service, ..s });
        }
        let record = NodeRecord {
            host: host.to_ascii(),
            services,
            ..record
        };
        Ok((host, record))
    }

    /// Removes a host's record sets; true if the host was published.
    fn remove_host(&self, state: &mut ZoneState, host: &Name) -> bool {
        let Some(old) = state.nodes.remove(&LowerName::new(host)) else {
            return false;
        };
        for set in self.node_rrsets(host, &old) {
            state
                .records
                .remove(&RrKey::new(LowerName::new(set.name()), set.record_type()));
        }
        true
    }

    fn node_rrsets(&self, host: &Name, record: &NodeRecord) -> Vec<RecordSet> {
        let ttl = self.inner.ttl;
        let mut aaaa = RecordSet::with_ttl(host.clone(), RecordType::AAAA, ttl);
        aaaa.add_rdata(RData::AAAA(AAAA(record.address)));
        let mut txt = RecordSet::with_ttl(host.clone(), RecordType::TXT, ttl);
        txt.add_rdata(RData::TXT(TXT::new(vec![record.fingerprint_txt()])));
        let mut srv: BTreeMap<String, RecordSet> = BTreeMap::new();
        for s in &record.services {
            // Validated by `canonical`: the labels are valid and fit.
            let Ok(name) = Name::from_ascii(format!("{}.{}", s.service, host.to_ascii())) else {
                continue;
            };
            let set = srv
                .entry(s.service.clone())
                .or_insert_with(|| RecordSet::with_ttl(name, RecordType::SRV, ttl));
            set.add_rdata(RData::SRV(SRV::new(s.priority, s.weight, s.port, host.clone())));
        }
        let mut sets = vec![aaaa, txt];
        sets.extend(srv.into_values());
        sets
    }

    /// SOA (with the current serial), NS and the name server's address.
    fn apex_records(&self, state: &mut ZoneState) {
        let z = &self.inner;
        let mut soa = RecordSet::with_ttl(z.origin.clone(), RecordType::SOA, z.ttl);
        soa.add_rdata(RData::SOA(SOA::new(
            z.ns_name.clone(),
            z.rname.clone(),
            state.serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            z.ttl,
        )));
        let mut ns = RecordSet::with_ttl(z.origin.clone(), RecordType::NS, z.ttl);
        ns.add_rdata(RData::NS(NS(z.ns_name.clone())));
        let mut sets = vec![soa, ns];
        if let Some(addr) = z.ns_address {
            let mut glue = RecordSet::with_ttl(z.ns_name.clone(), RecordType::AAAA, z.ttl);
            glue.add_rdata(RData::AAAA(AAAA(addr)));
            sets.push(glue);
        }
        for set in sets {
            let key = RrKey::new(LowerName::new(set.name()), set.record_type());
            state.records.insert(key, Arc::new(set));
        }
    }

    fn commit(&self, state: &mut ZoneState) {
        state.serial = state.serial.wrapping_add(1).max(1);
        self.apex_records(state);
        self.publish(state);
    }

    fn publish(&self, state: &ZoneState) {
        let mut handler = InMemoryZoneHandler::empty(self.inner.origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        *handler.records_get_mut() = state.records.clone();
        self.inner.published.store(Arc::new(handler));
    }
}
