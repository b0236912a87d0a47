//! The canonical binary encoding of TrustChain's messages and statements.
//!
//! Big-endian integers, length-prefixed byte strings with a bound checked
//! before anything is allocated, and strict decoding: trailing bytes, short
//! input and out-of-range lengths are errors. One encoding per value, so a
//! signature over the encoding is a signature over the value.

use stoq::crypto::{PublicKey, Signature};

use crate::error::WireError;

/// Builds an encoding.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer::default()
    }

    /// A writer with room for `bytes` (no reallocation while it fits).
    pub fn with_capacity(bytes: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(bytes),
        }
    }

    /// A writer starting with a domain-separation prefix (what a signature
    /// is for), so a signature for one purpose never verifies for another.
    pub fn with_domain(domain: &[u8]) -> Self {
        let mut w = Writer::new();
        w.buf.extend_from_slice(domain);
        w.buf.push(0);
        w
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends fixed-size bytes without a length.
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends bytes with a u8 length prefix; the caller keeps them short.
    pub fn bytes8(&mut self, v: &[u8]) -> &mut Self {
        let len = u8::try_from(v.len()).unwrap_or(u8::MAX);
        self.u8(len).fixed(&v[..usize::from(len)])
    }

    /// Appends bytes with a u16 length prefix (truncating past 65,535,
    /// which the decoders' smaller bounds refuse anyway).
    pub fn bytes16(&mut self, v: &[u8]) -> &mut Self {
        let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
        self.u16(len).fixed(&v[..usize::from(len)])
    }

    /// Appends bytes with a u32 length prefix.
    pub fn bytes32(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.u32(len).fixed(&v[..len as usize])
    }

    /// Appends a string with a u8 length prefix.
    pub fn str8(&mut self, v: &str) -> &mut Self {
        self.bytes8(v.as_bytes())
    }

    /// Appends a public key in the compact algorithm-tagged form.
    pub fn key(&mut self, k: &PublicKey) -> &mut Self {
        self.bytes16(&k.to_compact())
    }

    /// Appends a signature in the compact algorithm-tagged form.
    pub fn sig(&mut self, s: &Signature) -> &mut Self {
        self.bytes16(&s.to_compact())
    }

    /// The encoding so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// The finished encoding.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads an encoding, refusing anything out of bounds.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf`, naming it `what` in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    fn err(&self, reason: impl Into<String>) -> WireError {
        WireError {
            what: self.what,
            reason: reason.into(),
        }
    }

    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(self.err(format!("truncated: needed {n} more bytes, {} left", self.buf.len())));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads u8-prefixed bytes of at most `max`.
    pub fn bytes8(&mut self, max: usize) -> Result<&'a [u8], WireError> {
        let len = usize::from(self.u8()?);
        self.bounded(len, max)
    }

    /// Reads u16-prefixed bytes of at most `max`.
    pub fn bytes16(&mut self, max: usize) -> Result<&'a [u8], WireError> {
        let len = usize::from(self.u16()?);
        self.bounded(len, max)
    }

    /// Reads u32-prefixed bytes of at most `max`.
    pub fn bytes32(&mut self, max: usize) -> Result<&'a [u8], WireError> {
        let len = self.u32()? as usize;
        self.bounded(len, max)
    }

    fn bounded(&mut self, len: usize, max: usize) -> Result<&'a [u8], WireError> {
        if len > max {
            return Err(self.err(format!("field of {len} bytes exceeds the limit of {max}")));
        }
        self.take(len)
    }

    /// Reads a u8-prefixed UTF-8 string of at most `max` bytes.
    pub fn str8(&mut self, max: usize) -> Result<String, WireError> {
        let b = self.bytes8(max)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }

    /// Reads a compact public key.
    pub fn key(&mut self) -> Result<PublicKey, WireError> {
        let b = self.bytes16(4096)?;
        PublicKey::from_compact(b).map_err(|e| self.err(format!("public key: {e}")))
    }

    /// Reads a compact signature.
    pub fn sig(&mut self) -> Result<Signature, WireError> {
        let b = self.bytes16(4096)?;
        let (sig, rest) = Signature::from_compact_prefix(b).map_err(|e| self.err(format!("signature: {e}")))?;
        if !rest.is_empty() {
            return Err(self.err("trailing bytes after the signature"));
        }
        Ok(sig)
    }

    /// Reads a count prefix (u8) refusing more than `max` items.
    pub fn count(&mut self, max: usize) -> Result<usize, WireError> {
        let n = usize::from(self.u8()?);
        if n > max {
            return Err(self.err(format!("{n} items exceed the limit of {max}")));
        }
        Ok(n)
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Fails unless everything was read.
    pub fn finish(self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes", self.buf.len())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let mut w = Writer::with_domain(b"test");
        w.u8(7)
            .u16(513)
            .u32(70_000)
            .u64(1 << 40)
            .bytes8(b"ab")
            .bytes16(b"cde")
            .str8("name");
        let buf = w.finish();
        let mut r = Reader::new(&buf, "test");
        assert_eq!(r.take(5).unwrap(), b"test\0");
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u16().unwrap(), 513);
        assert_eq!(r.u32().unwrap(), 70_000);
        assert_eq!(r.u64().unwrap(), 1 << 40);
        assert_eq!(r.bytes8(2).unwrap(), b"ab");
        assert!(r.clone().bytes16(2).is_err(), "over the bound");
        assert_eq!(r.bytes16(3).unwrap(), b"cde");
        assert_eq!(r.str8(16).unwrap(), "name");
        r.finish().unwrap();

        let mut r = Reader::new(&buf[..3], "test");
        let e = r.u32().unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut r = Reader::new(&buf, "test");
        r.take(1).unwrap();
        assert!(r.finish().unwrap_err().to_string().contains("trailing"));
    }
}
