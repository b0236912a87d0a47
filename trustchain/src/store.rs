//! A member's persistent state in `redb`: the log (entries and leaf
//! hashes), checkpoints, the heads it witnessed, certificates it issued,
//! tokens and whether they were used, revocations, and the DNS zone.
//!
//! Everything a batch changes is written in one transaction, so a crash
//! leaves either the whole batch or none of it.
//!
//! A certificate is stored once, in the log in place of its
//! precertificate entry (which is the certificate's body without the
//! inclusion proof and signature, so it is derived when read); the
//! certificates table maps serials to log indexes. Writing the entry and
//! the certificate separately cost nearly twice the bytes per issuance. The batch being co-signed
//! is written first as "pending" and re-driven after a restart: a witness
//! that signed a head never sees a different head at that size from us.

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;

use stoq::pki::{tbs_of, tbs_remove_extension, Certificate};

use crate::checkpoint::Checkpoint;
use crate::inclusion::{precertificate_entry, INCLUSION_PROOF_OID};
use crate::log::Hash;
use crate::revocation::SignedRevocation;
use crate::witness::Head;
use crate::{Error, Result};

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const ENTRIES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log_entries");
const LEAVES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log_leaves");
const CHECKPOINTS: TableDefinition<'_, (u16, u64), &[u8]> = TableDefinition::new("checkpoints");
const WITNESS: TableDefinition<'_, u16, &[u8]> = TableDefinition::new("witness_heads");
/// Serial -> log index of the certificate (big-endian u64).
const CERTS: TableDefinition<'_, &[u8], u64> = TableDefinition::new("certificate_index");
const TOKENS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("tokens");
const REVOCATIONS: TableDefinition<'_, (u16, &[u8]), &[u8]> = TableDefinition::new("revocations");
const ZONE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("zone");
/// What each certificate this member issued publishes in DNS, by log
/// index: the feed other members replicate the zone from.
const ZONE_FEED: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("zone_feed");
/// How far this member replicated each other member's feed.
const ZONE_CURSORS: TableDefinition<'_, u16, u64> = TableDefinition::new("zone_cursors");

const PENDING_KEY: &str = "pending_batch";
const NONCE_SECRET_KEY: &str = "nonce_secret";
const SCHEMA_KEY: &str = "schema";
/// Version of the table layout; a data dir of another version is refused.
const SCHEMA: u8 = 2;

/// First byte of a stored log entry that holds a whole certificate (the
/// entry is its precertificate); entry types themselves start at 1.
const STORED_CERTIFICATE: u8 = 0xC0;

/// The log entry a stored row stands for.
fn entry_of_row(row: &[u8]) -> Result<Vec<u8>> {
    match row.split_first() {
        Some((&STORED_CERTIFICATE, der)) => {
            let cert = Certificate::from_der(der).map_err(|e| Error::Store(format!("stored certificate: {e}")))?;
            let (body, _) = tbs_remove_extension(&tbs_of(&cert)?, &INCLUSION_PROOF_OID)?;
            Ok(precertificate_entry(&body))
        }
        _ => Ok(row.to_vec()),
    }
}

fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

/// What a token is, as far as this member knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Created here, not used.
    Issued,
    /// Used in the batch ending at (log, tree size).
    Used {
        /// The log whose batch spent it.
        log_id: u16,
        /// That batch's head size.
        tree_size: u64,
    },
}

impl TokenState {
    fn encode(&self) -> Vec<u8> {
        match self {
            TokenState::Issued => vec![0],
            TokenState::Used { log_id, tree_size } => {
                let mut v = vec![1];
                v.extend_from_slice(&log_id.to_be_bytes());
                v.extend_from_slice(&tree_size.to_be_bytes());
                v
            }
        }
    }

    fn decode(b: &[u8]) -> Result<Self> {
        match b {
            [0] => Ok(TokenState::Issued),
            [1, rest @ ..] if rest.len() == 10 => Ok(TokenState::Used {
                log_id: u16::from_be_bytes([rest[0], rest[1]]),
                tree_size: u64::from_be_bytes(rest[2..10].try_into().map_err(db_err)?),
            }),
            _ => Err(Error::Store("corrupt token record".into())),
        }
    }
}

/// Everything one completed batch writes.
#[derive(Debug, Default)]
pub struct BatchCommit {
    /// First entry index.
    pub start: u64,
    /// The entries and their leaf hashes, in order.
    pub entries: Vec<(Vec<u8>, Hash)>,
    /// The co-signed checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// Certificates issued (log index, serial, DER). The entry at that
    /// index must be the certificate's precertificate: the certificate is
    /// stored in its place.
    pub certificates: Vec<(u64, Vec<u8>, Vec<u8>)>,
    /// Tokens spent.
    pub tokens_used: Vec<[u8; 16]>,
    /// Revocations logged.
    pub revocations: Vec<SignedRevocation>,
    /// DNS records to set (host, encoded record).
    pub zone_set: Vec<(String, Vec<u8>)>,
    /// DNS hosts to remove.
    pub zone_remove: Vec<String>,
    /// Zone feed rows (log index, encoded row) for the certificates issued.
    pub zone_feed: Vec<(u64, Vec<u8>)>,
}

/// The member database.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(|e| {
            Error::Store(format!(
                "opening {}: {e} (is another trustchain process using this data dir?)",
                path.display()
            ))
        })?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            txn.open_table(META).map_err(db_err)?;
            txn.open_table(ENTRIES).map_err(db_err)?;
            txn.open_table(LEAVES).map_err(db_err)?;
            txn.open_table(CHECKPOINTS).map_err(db_err)?;
            txn.open_table(WITNESS).map_err(db_err)?;
            txn.open_table(CERTS).map_err(db_err)?;
            txn.open_table(TOKENS).map_err(db_err)?;
            txn.open_table(REVOCATIONS).map_err(db_err)?;
            txn.open_table(ZONE).map_err(db_err)?;
            txn.open_table(ZONE_FEED).map_err(db_err)?;
            txn.open_table(ZONE_CURSORS).map_err(db_err)?;
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let schema = meta.get(SCHEMA_KEY).map_err(db_err)?.map(|v| v.value().to_vec());
            match schema.as_deref() {
                Some([v]) if *v == SCHEMA => {}
                None if txn.open_table(LEAVES).map_err(db_err)?.is_empty().map_err(db_err)? => {
                    meta.insert(SCHEMA_KEY, [SCHEMA].as_slice()).map_err(db_err)?;
                }
                other => {
                    return Err(Error::Store(format!(
                        "{} was written with table layout {:?}, this build reads layout {SCHEMA}; \
                         use a fresh data dir (trustchain init) or the trustchain build that wrote it",
                        path.display(),
                        other.map_or(1, |v| v.first().copied().unwrap_or(0))
                    )))
                }
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(Store { db })
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(META).map_err(db_err)?;
        Ok(t.get(key).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    fn put_meta(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(META).map_err(db_err)?;
            match value {
                Some(v) => {
                    t.insert(key, v).map_err(db_err)?;
                }
                None => {
                    t.remove(key).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }

    /// The secret nonces are derived from, created on first use.
    pub fn nonce_secret(&self) -> Result<[u8; 32]> {
        if let Some(v) = self.get_meta(NONCE_SECRET_KEY)? {
            return v.try_into().map_err(|_| Error::Store("corrupt nonce secret".into()));
        }
        let mut s = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut s);
        self.put_meta(NONCE_SECRET_KEY, Some(&s))?;
        Ok(s)
    }

    /// The batch being co-signed, if a previous run left one.
    pub fn pending_batch(&self) -> Result<Option<Vec<u8>>> {
        self.get_meta(PENDING_KEY)
    }

    /// The log's leaf hashes, in order (to rebuild the tree at start).
    pub fn leaf_hashes(&self) -> Result<Vec<Hash>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(LEAVES).map_err(db_err)?;
        let mut out = Vec::with_capacity(usize::try_from(t.len().map_err(db_err)?).unwrap_or(0));
        for (i, row) in t.iter().map_err(db_err)?.enumerate() {
            let (k, v) = row.map_err(db_err)?;
            if k.value() != i as u64 {
                return Err(Error::Store(format!("log has a hole at entry {i}")));
            }
            out.push(
                v.value()
                    .try_into()
                    .map_err(|_| Error::Store("corrupt leaf hash".into()))?,
            );
        }
        Ok(out)
    }

    /// Log entries `start..end`.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(ENTRIES).map_err(db_err)?;
        let mut out = Vec::new();
        for row in t.range(start..end).map_err(db_err)? {
            out.push(entry_of_row(row.map_err(db_err)?.1.value())?);
        }
        Ok(out)
    }

    /// Writes a completed batch atomically and clears the pending batch.
    pub fn commit_batch(&self, batch: &BatchCommit) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut entries = txn.open_table(ENTRIES).map_err(db_err)?;
            let mut leaves = txn.open_table(LEAVES).map_err(db_err)?;
            let end = batch.start + batch.entries.len() as u64;
            let mut stored = Vec::new();
            let mut certs = batch.certificates.iter().peekable();
            for (i, (entry, leaf)) in batch.entries.iter().enumerate() {
                let idx = batch.start + i as u64;
                match certs.next_if(|(at, _, _)| *at == idx) {
                    Some((_, _, der)) => {
                        stored.clear();
                        stored.push(STORED_CERTIFICATE);
                        stored.extend_from_slice(der);
                        entries.insert(idx, stored.as_slice()).map_err(db_err)?;
                    }
                    None => {
                        entries.insert(idx, entry.as_slice()).map_err(db_err)?;
                    }
                }
                leaves.insert(idx, leaf.as_slice()).map_err(db_err)?;
            }
            if let Some((at, _, _)) = certs.next() {
                return Err(Error::Store(format!(
                    "certificate for entry {at} outside the batch {}..{end} or out of order",
                    batch.start
                )));
            }
            if let Some(cp) = &batch.checkpoint {
                let mut t = txn.open_table(CHECKPOINTS).map_err(db_err)?;
                t.insert((cp.body.log_id, cp.body.tree_size), cp.encode().as_slice())
                    .map_err(db_err)?;
            }
            let mut certs = txn.open_table(CERTS).map_err(db_err)?;
            for (at, serial, _) in &batch.certificates {
                certs.insert(serial.as_slice(), *at).map_err(db_err)?;
            }
            if let Some(cp) = &batch.checkpoint {
                let mut tokens = txn.open_table(TOKENS).map_err(db_err)?;
                let used = TokenState::Used {
                    log_id: cp.body.log_id,
                    tree_size: cp.body.tree_size,
                }
                .encode();
                for id in &batch.tokens_used {
                    tokens.insert(id.as_slice(), used.as_slice()).map_err(db_err)?;
                }
            }
            let mut revs = txn.open_table(REVOCATIONS).map_err(db_err)?;
            for r in &batch.revocations {
                revs.insert(
                    (r.statement.issuer_log, r.statement.serial.as_slice()),
                    r.encode().as_slice(),
                )
                .map_err(db_err)?;
            }
            let mut zone = txn.open_table(ZONE).map_err(db_err)?;
            for host in &batch.zone_remove {
                zone.remove(host.as_str()).map_err(db_err)?;
            }
            for (host, rec) in &batch.zone_set {
                zone.insert(host.as_str(), rec.as_slice()).map_err(db_err)?;
            }
            let mut feed = txn.open_table(ZONE_FEED).map_err(db_err)?;
            for (index, row) in &batch.zone_feed {
                feed.insert(*index, row.as_slice()).map_err(db_err)?;
            }
            if let Some(cp) = &batch.checkpoint {
                // The head this member signed for its own log (a 1-of-1
                // member records it only here).
                let head = Head {
                    size: cp.body.tree_size,
                    root: cp.body.root,
                    timestamp_ms: cp.body.timestamp_ms,
                };
                let mut w = txn.open_table(WITNESS).map_err(db_err)?;
                w.insert(cp.body.log_id, head.encode().as_slice()).map_err(db_err)?;
            }
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.remove(PENDING_KEY).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Stores a checkpoint (ours or another member's).
    pub fn put_checkpoint(&self, cp: &Checkpoint) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(CHECKPOINTS).map_err(db_err)?;
            t.insert((cp.body.log_id, cp.body.tree_size), cp.encode().as_slice())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Checkpoints of `log_id` with a tree size above `after`, oldest first,
    /// at most `limit`.
    pub fn checkpoints_after(&self, log_id: u16, after: u64, limit: usize) -> Result<Vec<Checkpoint>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(CHECKPOINTS).map_err(db_err)?;
        let mut out = Vec::new();
        for row in t
            .range((log_id, after.saturating_add(1))..=(log_id, u64::MAX))
            .map_err(db_err)?
            .take(limit)
        {
            out.push(Checkpoint::decode(row.map_err(db_err)?.1.value())?);
        }
        Ok(out)
    }

    /// Every stored checkpoint (to fill the trust store at start).
    pub fn all_checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(CHECKPOINTS).map_err(db_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db_err)? {
            out.push(Checkpoint::decode(row.map_err(db_err)?.1.value())?);
        }
        Ok(out)
    }

    /// The last head this member signed for `log_id`.
    pub fn witness_head(&self, log_id: u16) -> Result<Option<Head>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(WITNESS).map_err(db_err)?;
        match t.get(log_id).map_err(db_err)? {
            Some(v) => Ok(Some(Head::decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// Records a co-signature: the new head and the tokens the batch spends,
    /// and, for this member's own batch, the batch as pending, in one
    /// transaction. Fails with the token id if one was spent by another
    /// batch (and then writes nothing).
    pub fn record_cosign(
        &self,
        log_id: u16,
        head: &Head,
        tokens: &[[u8; 16]],
        pending: Option<&[u8]>,
    ) -> Result<Option<[u8; 16]>> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            if let Some(p) = pending {
                let mut meta = txn.open_table(META).map_err(db_err)?;
                meta.insert(PENDING_KEY, p).map_err(db_err)?;
            }
            let mut t = txn.open_table(TOKENS).map_err(db_err)?;
            let used = TokenState::Used {
                log_id,
                tree_size: head.size,
            };
            for id in tokens {
                let prior = t
                    .get(id.as_slice())
                    .map_err(db_err)?
                    .map(|v| TokenState::decode(v.value()));
                match prior.transpose()? {
                    Some(state @ TokenState::Used { .. }) if state != used => {
                        drop(t);
                        txn.abort().map_err(db_err)?;
                        return Ok(Some(*id));
                    }
                    _ => {
                        t.insert(id.as_slice(), used.encode().as_slice()).map_err(db_err)?;
                    }
                }
            }
            let mut w = txn.open_table(WITNESS).map_err(db_err)?;
            w.insert(log_id, head.encode().as_slice()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(None)
    }

    /// A token's state.
    pub fn token(&self, id: &[u8; 16]) -> Result<Option<TokenState>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(TOKENS).map_err(db_err)?;
        match t.get(id.as_slice()).map_err(db_err)? {
            Some(v) => Ok(Some(TokenState::decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// Records a token created here.
    pub fn put_token(&self, id: &[u8; 16]) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(TOKENS).map_err(db_err)?;
            t.insert(id.as_slice(), TokenState::Issued.encode().as_slice())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// A certificate issued here, by serial.
    pub fn certificate(&self, serial: &[u8]) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let Some(at) = txn
            .open_table(CERTS)
            .map_err(db_err)?
            .get(serial)
            .map_err(db_err)?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        let entries = txn.open_table(ENTRIES).map_err(db_err)?;
        let row = entries
            .get(at)
            .map_err(db_err)?
            .ok_or_else(|| Error::Store(format!("certificate index points at missing entry {at}")))?;
        match row.value().split_first() {
            Some((&STORED_CERTIFICATE, der)) => Ok(Some(der.to_vec())),
            _ => Err(Error::Store(format!("entry {at} holds no certificate"))),
        }
    }

    /// Stores revocations learned from other members.
    pub fn put_revocation(&self, r: &SignedRevocation) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(REVOCATIONS).map_err(db_err)?;
            t.insert(
                (r.statement.issuer_log, r.statement.serial.as_slice()),
                r.encode().as_slice(),
            )
            .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Every revocation known.
    pub fn revocations(&self) -> Result<Vec<SignedRevocation>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(REVOCATIONS).map_err(db_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db_err)? {
            out.push(SignedRevocation::decode(row.map_err(db_err)?.1.value())?);
        }
        Ok(out)
    }

    /// The DNS zone records (host, encoded record).
    pub fn zone(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(ZONE).map_err(db_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Sets DNS zone records (host, encoded record).
    pub fn put_zone_records(&self, set: &[(String, Vec<u8>)]) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut zone = txn.open_table(ZONE).map_err(db_err)?;
            for (host, rec) in set {
                zone.insert(host.as_str(), rec.as_slice()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Removes DNS hosts (names whose certificate expired).
    pub fn remove_zone_hosts(&self, hosts: &[String]) -> Result<()> {
        if hosts.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut zone = txn.open_table(ZONE).map_err(db_err)?;
            for h in hosts {
                zone.remove(h.as_str()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Zone feed rows with an index in `from..until`, at most `limit`.
    pub fn zone_feed(&self, from: u64, until: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(ZONE_FEED).map_err(db_err)?;
        let mut out = Vec::new();
        if from >= until {
            return Ok(out);
        }
        for row in t.range(from..until).map_err(db_err)?.take(limit) {
            let (k, v) = row.map_err(db_err)?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// How far the feed of `log_id` was replicated (the next index to ask).
    pub fn zone_cursor(&self, log_id: u16) -> Result<u64> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(ZONE_CURSORS).map_err(db_err)?;
        Ok(t.get(log_id).map_err(db_err)?.map(|v| v.value()).unwrap_or(0))
    }

    /// Stores records replicated from the feed of `log_id` and the cursor
    /// after them, in one transaction.
    pub fn store_replicated(&self, log_id: u16, next: u64, set: &[(String, Vec<u8>)]) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut zone = txn.open_table(ZONE).map_err(db_err)?;
            for (host, rec) in set {
                zone.insert(host.as_str(), rec.as_slice()).map_err(db_err)?;
            }
            let mut cursors = txn.open_table(ZONE_CURSORS).map_err(db_err)?;
            cursors.insert(log_id, next).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Counts: log entries, certificates, tokens, revocations.
    pub fn counts(&self) -> Result<(u64, u64, u64, u64)> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let n = |t: Result<u64>| t;
        Ok((
            n(txn.open_table(LEAVES).map_err(db_err)?.len().map_err(db_err))?,
            n(txn.open_table(CERTS).map_err(db_err)?.len().map_err(db_err))?,
            n(txn.open_table(TOKENS).map_err(db_err)?.len().map_err(db_err))?,
            n(txn.open_table(REVOCATIONS).map_err(db_err)?.len().map_err(db_err))?,
        ))
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
