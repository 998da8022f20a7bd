//! A bounds-checked reader for Sigil's own versioned binary encodings (key
//! shares, public key packages). Every read that runs past the end fails
//! with [`ProtocolError::InvalidParameters`] instead of panicking, so
//! decoding garbage is always an error.

use zeroize::Zeroizing;

use crate::{NodeId, ProtocolError, Scheme};

/// Magic of every key-share encoding.
const SHARE_MAGIC: &[u8; 4] = b"SGKS";
/// Version of the key-share envelope.
const SHARE_VERSION: u8 = 1;

/// The envelope every key share is stored in (secret: seal it at rest):
/// `"SGKS" ‖ version ‖ scheme tag ‖ node (u16 BE) ‖ (u32 BE len ‖ part)*`.
pub(crate) fn encode_share(scheme: Scheme, node: NodeId, parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let len = 8 + parts.iter().map(|p| 4 + p.len()).sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    out.extend_from_slice(SHARE_MAGIC);
    out.push(SHARE_VERSION);
    out.push(scheme.tag());
    out.extend_from_slice(&node.get().to_be_bytes());
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// Reads the header of [`encode_share`]: the scheme, the node, and a reader
/// positioned at the first part.
pub(crate) fn decode_share_header(
    bytes: &[u8],
) -> Result<(Scheme, NodeId, Reader<'_>), ProtocolError> {
    let mut reader = Reader::new(bytes, "key share");
    if reader.take(4)? != SHARE_MAGIC {
        return Err(reader.bad("bad magic"));
    }
    let [version] = reader.array()?;
    if version != SHARE_VERSION {
        return Err(reader.bad(&format!("unsupported version {version}")));
    }
    let [tag] = reader.array()?;
    let scheme = Scheme::from_tag(tag)?;
    let node = NodeId::new(reader.u16()?)?;
    Ok((scheme, node, reader))
}

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
