//! The canonical binary encoding of chain values.
//!
//! It is TrustChain's encoding ([`trustchain::wire`]: big-endian integers,
//! length-prefixed fields with bounds checked before allocation, strict
//! decoding), plus the few shapes the chain needs on top: 128-bit amounts,
//! 32-bit item counts and 32-byte hashes. One encoding per value, so a hash
//! or signature over the encoding is over the value.

pub use trustchain::wire::{Reader, Writer};

use crate::error::{Error, Result};

/// A SHA3-256 digest.
pub type Hash = [u8; 32];

/// Chain-specific shapes on top of [`Writer`].
pub trait WriteExt {
    /// Appends a big-endian u128.
    fn u128(&mut self, v: u128) -> &mut Self;
    /// Appends a 32-byte hash.
    fn hash(&mut self, h: &Hash) -> &mut Self;
}

impl WriteExt for Writer {
    fn u128(&mut self, v: u128) -> &mut Self {
        self.fixed(&v.to_be_bytes())
    }

    fn hash(&mut self, h: &Hash) -> &mut Self {
        self.fixed(h)
    }
}

/// Chain-specific shapes on top of [`Reader`].
pub trait ReadExt {
    /// Reads a big-endian u128.
    fn u128(&mut self) -> Result<u128>;
    /// Reads a 32-byte hash.
    fn hash(&mut self) -> Result<Hash>;
    /// Reads a u32 item count, refusing more than `max`.
    fn count32(&mut self, max: usize) -> Result<usize>;
}

impl ReadExt for Reader<'_> {
    fn u128(&mut self) -> Result<u128> {
        Ok(u128::from_be_bytes(self.array()?))
    }

    fn hash(&mut self) -> Result<Hash> {
        Ok(self.array()?)
    }

    fn count32(&mut self, max: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(Error::Decode {
                what: "item count",
                reason: format!("{n} items exceed the limit of {max}"),
            });
        }
        Ok(n)
    }
}

/// Fails with [`Error::Encode`] unless `len <= max`.
pub(crate) fn check_len(what: &'static str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::Encode {
            what,
            reason: format!("{len} bytes exceed the limit of {max}"),
        });
    }
    Ok(())
}
