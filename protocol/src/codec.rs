//! A bounds-checked reader for Sigil's own versioned binary encodings (key
//! shares, public key packages). Every read that runs past the end fails
//! with [`ProtocolError::InvalidParameters`] instead of panicking, so
//! decoding garbage is always an error.

use crate::ProtocolError;

/// Reads fixed-size fields and `u32`-length-prefixed chunks from a byte slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    /// What is being decoded, for error messages ("key share", …).
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, what }
    }

    /// An error about the encoding being read.
    pub(crate) fn bad(&self, reason: &str) -> ProtocolError {
        ProtocolError::InvalidParameters(format!("invalid {} encoding: {reason}", self.what))
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.bytes.len() < n {
            return Err(self.bad("truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn chunk(&mut self) -> Result<&'a [u8], ProtocolError> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        self.take(len)
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(self) -> Result<(), ProtocolError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.bad("trailing bytes"))
        }
    }
}
