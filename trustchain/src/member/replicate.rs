//! Zone replication: every member answers DNS for the whole zone, not
//! only for the names it issued.
//!
//! Each member keeps a *feed*: for every certificate it logged, by log
//! index, the address it saw the request come from and the services
//! requested (the two facts a certificate does not carry). The others pull
//! it over STOQ whenever a checkpoint of that member's log reaches their
//! trust store (gossip, or the periodic sync), asking only for indexes the
//! checkpoint covers. A member accepts an entry only if the certificate is
//! one the trust store accepts (issued by that member, logged under a
//! k-signed checkpoint at that very index, not revoked, not expired), so a
//! member can add nothing to another's zone that the CA did not issue; the
//! address is taken on the issuing member's word, as it was the one that
//! saw the request. The cursor per member and the records are stored in
//! one transaction, so a restart resumes where it stopped.

use bytes::Bytes;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use stoq::pki::Certificate;

use super::zone::NameRecord;
use super::Shared;
use crate::bundle::{verify_issued_by, Member};
use crate::error::{Refusal, WireError};
use crate::inclusion::precertificate_of;
use crate::messages::{method, SyncRequest, SyncResponse, ZoneFeedEntry, ZoneFeedRequest, ZoneFeedResponse};
use crate::policy::check_address;
use crate::request::{read_services, write_services, Service};
use crate::revocation::issuer_of;
use crate::time::now_ms;
use crate::trust::CertificateStatus;
use crate::wire::{Reader, Writer};
use crate::Error;

/// Entries per feed page (certificates are about 3.5 KB each).
const FEED_PAGE: usize = 64;

/// A stored feed row: the certificate's serial, the address, the services.
pub(crate) fn feed_row(serial: &[u8], address: Ipv6Addr, services: &[Service]) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes8(serial).fixed(&address.octets());
    write_services(&mut w, services);
    w.finish()
}

fn parse_feed_row(buf: &[u8]) -> Result<(Vec<u8>, Ipv6Addr, Vec<Service>), WireError> {
    let mut r = Reader::new(buf, "zone feed row");
    let serial = r.bytes8(20)?.to_vec();
    let address = Ipv6Addr::from(r.array::<16>()?);
    let services = read_services(&mut r)?;
    r.finish()?;
    Ok((serial, address, services))
}

/// Serves `tc.zone.feed`: entries in `from..until` (capped at this log's
/// size), one page at a time.
pub(crate) fn serve_feed(shared: &Shared, body: &[u8]) -> Result<Vec<u8>, Refusal> {
    let req = ZoneFeedRequest::decode(body)?;
    let until = req.until.min(shared.tree().size());
    let unavailable = |e: Error| Refusal::Unavailable(e.to_string());
    let rows = shared
        .store
        .zone_feed(req.from, until, FEED_PAGE)
        .map_err(unavailable)?;
    let next = match rows.last() {
        Some((index, _)) if rows.len() == FEED_PAGE => index + 1,
        _ => until.max(req.from),
    };
    let mut entries = Vec::with_capacity(rows.len());
    for (index, row) in rows {
        let (serial, address, services) = parse_feed_row(&row).map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let certificate = shared
            .store
            .certificate(&serial)
            .map_err(unavailable)?
            .ok_or_else(|| Refusal::Unavailable(format!("feed entry {index} names a certificate not stored")))?;
        entries.push(ZoneFeedEntry {
            index,
            certificate,
            address,
            services,
        });
    }
    Ok(ZoneFeedResponse { entries, next }.encode())
}

/// Pulls the other members' feeds whenever the trust store learns a
/// checkpoint, and at every sync interval; sweeps expired names.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut changes = shared.trust.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(shared.config.sync_interval_ms.max(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        for member in shared.bundle.members.iter().filter(|m| m.index != shared.index) {
            if let Err(e) = pull(&shared, member).await {
                debug!(member = %member.name, error = %e, "zone feed pull failed; retrying later");
            }
        }
        let expired = shared.zone.expire(now_ms(), &shared.store).await;
        shared.metrics.names_expired.inc_by(expired as u64);
        shared.metrics.zone_names.set(shared.zone.len() as i64);
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = changes.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
    }
}

/// Pulls one member's feed up to the latest checkpoint of its log this
/// member holds.
async fn pull(shared: &Arc<Shared>, member: &Member) -> Result<(), Error> {
    let timeout = Duration::from_millis(shared.config.cosign_timeout_ms);
    loop {
        let known = shared
            .trust
            .latest_sizes()
            .into_iter()
            .find(|(log, _)| *log == member.index)
            .map_or(0, |(_, size)| size);
        let cursor = shared.store.zone_cursor(member.index)?;
        if cursor >= known {
            return Ok(());
        }
        let name = member.dns_name(&shared.bundle.zone);
        let conn = tokio::time::timeout(timeout, shared.endpoint.connect(member.address, &name))
            .await
            .map_err(|_| Error::Refused(Refusal::Unavailable(format!("{} did not answer", member.name))))??;
        let body = ZoneFeedRequest {
            from: cursor,
            until: known,
        }
        .encode();
        let resp = conn
            .call(method::ZONE_FEED, Bytes::from(body), Some(timeout))
            .await
            .map_err(|e| Error::from_rpc(&member.name, e))?;
        let resp = ZoneFeedResponse::decode(&resp)?;
        if resp.next <= cursor || resp.next > known || resp.entries.first().is_some_and(|e| e.index < cursor) {
            return Err(Error::Refused(Refusal::Malformed(format!(
                "{} answered a feed page outside {cursor}..{known}",
                member.name
            ))));
        }
        let now = SystemTime::now();
        let mut set = Vec::new();
        let mut next = resp.next;
        let mut missing = None;
        for e in &resp.entries {
            match accept(shared, member.index, e, now) {
                Ok(records) => set.extend(records),
                Err(Skip::Refused(why)) => {
                    shared.metrics.feed_refused.inc();
                    debug!(member = %member.name, index = e.index, why, "zone feed entry refused");
                }
                Err(Skip::MissingCheckpoint) => {
                    // Gossip lost that batch's checkpoint (tc.sync only
                    // sends heads newer than the newest held): stop here,
                    // fetch it, and resume from this entry.
                    next = e.index;
                    missing = Some(e.index);
                    break;
                }
            }
        }
        let update = shared.zone.update().await;
        // A revocation that arrived since `accept` has already run its
        // zone removal: turn its records into tombstones here instead.
        for (_, r) in &mut set {
            if !r.revoked && shared.trust.is_revoked(r.issuer_log, &r.serial) {
                *r = r.tombstone();
            }
        }
        let winners = update.winners(set);
        let encoded: Vec<_> = winners.iter().map(|(h, r)| (h.clone(), r.encode())).collect();
        shared.store.store_replicated(member.index, next, &encoded)?;
        update.apply(&winners, &[]);
        drop(update);
        shared
            .metrics
            .names_replicated
            .inc_by(winners.iter().filter(|(_, r)| !r.revoked).count() as u64);
        if let Some(index) = missing {
            fetch_checkpoints(shared, member, &conn, index, timeout).await?;
        }
    }
}

/// Fetches the checkpoints of `member`'s log above `index` from it (the
/// first of them covers the entry at `index`) into the trust store.
async fn fetch_checkpoints(
    shared: &Shared,
    member: &Member,
    conn: &stoq::Connection,
    index: u64,
    timeout: Duration,
) -> Result<(), Error> {
    let have = shared
        .bundle
        .members
        .iter()
        .map(|m| (m.index, if m.index == member.index { index } else { u64::MAX }))
        .collect();
    let body = SyncRequest { have }.encode();
    let resp = conn
        .call(method::SYNC, Bytes::from(body), Some(timeout))
        .await
        .map_err(|e| Error::from_rpc(&member.name, e))?;
    let resp = SyncResponse::decode(&resp)?;
    let mut covered = false;
    for cp in resp.checkpoints {
        let b = &cp.body;
        let covers = b.log_id == member.index && b.batch_start <= index && index < b.tree_size;
        if shared.trust.add_checkpoint(cp.clone()).is_ok() {
            covered |= covers;
            let _ = shared.store.put_checkpoint(&cp);
        }
    }
    if covered {
        Ok(())
    } else {
        Err(Error::Refused(Refusal::NotFound(format!(
            "{} has no checkpoint covering its entry {index}",
            member.name
        ))))
    }
}

/// Why a feed entry sets no record.
enum Skip {
    /// The trust store lacks the checkpoint of the entry's batch.
    MissingCheckpoint,
    /// The entry does not check out.
    Refused(String),
}

/// The records one feed entry sets, if the certificate checks out:
/// tombstones if it was revoked (so an older certificate for its names
/// cannot take them back).
fn accept(
    shared: &Shared,
    log: u16,
    entry: &ZoneFeedEntry,
    now: SystemTime,
) -> Result<Vec<(String, NameRecord)>, Skip> {
    let refused = Skip::Refused;
    let cert = Certificate::from_der(&entry.certificate).map_err(|e| refused(format!("certificate: {e}")))?;
    if issuer_of(&shared.bundle, &cert) != Some(log) {
        return Err(refused("not issued by the member whose feed it is in".into()));
    }
    let member = shared
        .bundle
        .member(log)
        .ok_or_else(|| refused("unknown member".into()))?;
    verify_issued_by(&cert, member.key()).map_err(|e| refused(format!("issuer signature: {e}")))?;
    let (proof, _) = precertificate_of(&cert)
        .map_err(|e| refused(format!("inclusion proof: {e}")))?
        .ok_or_else(|| refused("no inclusion proof".into()))?;
    if shared.trust.checkpoint(proof.log_id, proof.tree_size).is_none() {
        return Err(Skip::MissingCheckpoint);
    }
    let revoked = shared.trust.is_revoked(log, cert.serial());
    if !revoked {
        match shared.trust.verify_certificate(&cert).map_err(refused)? {
            CertificateStatus::Logged { log_id, leaf_index } if log_id == log && leaf_index == entry.index => {}
            other => {
                return Err(refused(format!(
                    "logged as {other:?}, not at entry {} of log {log}",
                    entry.index
                )))
            }
        }
    } else if proof.log_id != log || proof.leaf_index != entry.index {
        return Err(refused(format!("not logged at entry {} of log {log}", entry.index)));
    }
    if cert.not_after() <= now {
        return Err(refused("expired".into()));
    }
    check_address(entry.address).map_err(|e| refused(e.to_string()))?;
    let records = NameRecord::for_certificate(&cert, log, entry.address, &entry.services);
    Ok(if revoked {
        records.into_iter().map(|(h, r)| (h, r.tombstone())).collect()
    } else {
        records
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_rows_round_trip_and_refuse_garbage() {
        let services = vec![Service {
            name: "_stoq._udp".into(),
            port: 7000,
        }];
        let row = feed_row(&[1, 2, 3], Ipv6Addr::LOCALHOST, &services);
        assert_eq!(
            parse_feed_row(&row).unwrap(),
            (vec![1, 2, 3], Ipv6Addr::LOCALHOST, services)
        );
        assert!(parse_feed_row(&row[..row.len() - 1]).is_err());
        let mut longer = row.clone();
        longer.push(0);
        assert!(parse_feed_row(&longer).is_err());
    }
}
