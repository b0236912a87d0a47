//! What executing a transaction leaves: events and a receipt. Receipts are
//! committed by the header's result root, so a light client can prove an
//! outcome.

use stoq::crypto::merkle_root;

use crate::codec::{Hash, ReadExt, Reader, WriteExt, Writer};
use crate::error::Result;

/// Most attributes in one event.
pub const MAX_ATTRIBUTES: usize = 32;
/// Most events in one receipt.
pub const MAX_EVENTS: usize = 256;

/// Bytes reserved to encode a receipt: a transfer's (one event naming
/// both accounts, the denomination and the amount) takes about 200.
const RECEIPT_CAPACITY: usize = 512;

/// Something a module reports, indexed by module and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The module that emitted it.
    pub module: String,
    /// Its kind within the module (`transfer`, `bond`, ...).
    pub kind: String,
    /// Named values (`from`, `amount`, ...).
    pub attributes: Vec<(String, Vec<u8>)>,
}

impl Event {
    /// An event with no attributes yet.
    pub fn new(module: &str, kind: &str) -> Self {
        Event {
            module: module.into(),
            kind: kind.into(),
            attributes: Vec::new(),
        }
    }

    /// Adds an attribute.
    pub fn with(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// Checks the limits the encoding has (names up to 64 bytes, values up
    /// to 65,535, at most [`MAX_ATTRIBUTES`]).
    pub fn check(&self) -> Result<()> {
        let bad = |reason: String| crate::Error::Module {
            module: self.module.clone(),
            reason: format!("event {}: {reason}", self.kind),
        };
        if self.module.len() > 64 || self.kind.len() > 64 {
            return Err(bad("module and kind are at most 64 bytes".into()));
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(bad(format!("more than {MAX_ATTRIBUTES} attributes")));
        }
        for (k, v) in &self.attributes {
            if k.len() > 64 || v.len() > usize::from(u16::MAX) {
                return Err(bad(format!("attribute {k:?} over its limits")));
            }
        }
        Ok(())
    }

    /// Bytes it occupies (what gas is charged on).
    pub fn size(&self) -> usize {
        self.module.len() + self.kind.len() + self.attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.str8(&self.module).str8(&self.kind).u8(self.attributes.len() as u8);
        for (k, v) in &self.attributes {
            w.str8(k).bytes16(v);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let module = r.str8(64)?;
        let kind = r.str8(64)?;
        let n = r.count(MAX_ATTRIBUTES)?;
        let mut attributes = Vec::with_capacity(n);
        for _ in 0..n {
            attributes.push((r.str8(64)?, r.bytes16(u16::MAX.into())?.to_vec()));
        }
        Ok(Event {
            module,
            kind,
            attributes,
        })
    }
}

/// The outcome of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The transaction's id.
    pub tx_hash: Hash,
    /// `None` on success; the module's error code and message on failure.
    pub error: Option<(u16, String)>,
    /// Gas used (the limit, when it ran out).
    pub gas_used: u64,
    /// Fee charged, in the native denomination.
    pub fee: u128,
    /// Events, in order (none when it failed).
    pub events: Vec<Event>,
    /// What the call returned (empty when it failed).
    pub output: Vec<u8>,
}

impl Receipt {
    /// Whether the call succeeded.
    pub fn success(&self) -> bool {
        self.error.is_none()
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        // Room for a transfer's receipt, so encoding one (every receipt
        // of every block, for the result root) does not grow the buffer.
        let mut w = Writer::with_capacity(RECEIPT_CAPACITY);
        w.hash(&self.tx_hash);
        match &self.error {
            None => {
                w.u8(0);
            }
            Some((code, msg)) => {
                let msg = crate::runtime::truncate(msg, 512);
                w.u8(1).u16(*code).bytes16(msg.as_bytes());
            }
        }
        w.u64(self.gas_used).u128(self.fee).u32(self.events.len() as u32);
        for e in &self.events {
            e.write(&mut w);
        }
        w.bytes32(&self.output);
        w.finish()
    }

    /// Decodes a receipt.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, "receipt");
        let tx_hash = r.hash()?;
        let error = match r.u8()? {
            0 => None,
            1 => {
                let code = r.u16()?;
                let msg = std::str::from_utf8(r.bytes16(512)?)
                    .map_err(|_| crate::Error::Decode {
                        what: "receipt",
                        reason: "error message is not UTF-8".into(),
                    })?
                    .to_owned();
                Some((code, msg))
            }
            tag => {
                return Err(crate::Error::Decode {
                    what: "receipt",
                    reason: format!("unknown outcome tag {tag}"),
                })
            }
        };
        let gas_used = r.u64()?;
        let fee = r.u128()?;
        let n = r.count32(MAX_EVENTS)?;
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(Event::read(&mut r)?);
        }
        let output = r.bytes32(64 * 1024)?.to_vec();
        r.finish()?;
        Ok(Receipt {
            tx_hash,
            error,
            gas_used,
            fee,
            events,
            output,
        })
    }

    /// The header's result root for `receipts`.
    pub fn root(receipts: &[Receipt]) -> Hash {
        let encoded: Vec<Vec<u8>> = receipts.iter().map(Receipt::encode).collect();
        Self::root_of_encodings(&encoded)
    }

    /// [`Receipt::root`] from the receipts' encodings (kept by a node that
    /// also stores them).
    pub fn root_of_encodings(encoded: &[Vec<u8>]) -> Hash {
        merkle_root(encoded)
    }
}
