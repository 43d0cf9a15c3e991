//! A minimal, bounds-checked ISO-BMFF (MP4) reader: just enough to find the
//! first video track's sample tables and walk its samples.
//!
//! Nothing read from the file is trusted: every size, count and offset is
//! checked against the bytes actually present before use, arithmetic is
//! checked, and no allocation is sized from a count the file claims without
//! first bounding that count by the bytes that would back it.

mod track;

pub use track::Codec;
pub(crate) use track::VideoTrack;

use crate::error::{Error, Result};

/// A cursor over a byte slice whose reads fail instead of panicking.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                Error::Mp4(format!(
                    "needed {n} bytes at offset {} of a {}-byte box",
                    self.pos,
                    self.buf.len()
                ))
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let hi = u64::from(self.u32()?);
        let lo = u64::from(self.u32()?);
        Ok((hi << 32) | lo)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        out
    }
}

/// One box: its four-character type and its body (header excluded).
#[derive(Clone, Copy)]
pub(crate) struct Mp4Box<'a> {
    pub(crate) kind: [u8; 4],
    pub(crate) body: &'a [u8],
}

/// Why iteration stopped early at the top level (used to diagnose truncation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Truncated {
    pub(crate) kind: String,
    pub(crate) declared_end: u64,
    pub(crate) available: u64,
}

/// Iterates the boxes packed in `buf`.
pub(crate) struct Boxes<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Set when the last box claimed more bytes than exist; iteration then stops.
    pub(crate) truncated: Option<Truncated>,
    failed: bool,
}

pub(crate) fn boxes(buf: &[u8]) -> Boxes<'_> {
    Boxes {
        buf,
        pos: 0,
        truncated: None,
        failed: false,
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<Mp4Box<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.truncated.is_some() || self.pos >= self.buf.len() {
            return None;
        }
        let mut r = Reader::new(&self.buf[self.pos..]);
        let header = (|| -> Result<(u64, [u8; 4], usize)> {
            let size32 = r.u32()?;
            let mut kind = [0u8; 4];
            kind.copy_from_slice(r.bytes(4)?);
            match size32 {
                0 => Ok(((self.buf.len() - self.pos) as u64, kind, 8)),
                1 => Ok((r.u64()?, kind, 16)),
                n => Ok((u64::from(n), kind, 8)),
            }
        })();
        let (size, kind, header_len) = match header {
            Ok(h) => h,
            Err(_) => {
                self.failed = true;
                return Some(Err(Error::Mp4(format!(
                    "box header at offset {} is cut short",
                    self.pos
                ))));
            }
        };
        let available = (self.buf.len() - self.pos) as u64;
        if size < header_len as u64 {
            self.failed = true;
            return Some(Err(Error::Mp4(format!(
                "box `{}` at offset {} declares size {size}, smaller than its header",
                fourcc(&kind),
                self.pos
            ))));
        }
        if size > available {
            self.truncated = Some(Truncated {
                kind: fourcc(&kind),
                declared_end: self.pos as u64 + size,
                available: self.buf.len() as u64,
            });
            return None;
        }
        // size <= available <= usize::MAX here.
        let size = size as usize;
        let body = &self.buf[self.pos + header_len..self.pos + size];
        self.pos += size;
        Some(Ok(Mp4Box { kind, body }))
    }
}

/// Finds exactly one child box of `kind` in `buf` (errors on none or several).
pub(crate) fn find_one<'a>(buf: &'a [u8], kind: &[u8; 4], parent: &str) -> Result<&'a [u8]> {
    find_opt(buf, kind, parent)?
        .ok_or_else(|| Error::Mp4(format!("`{parent}` has no `{}` box", fourcc(kind))))
}

/// Finds at most one child box of `kind` in `buf`; a truncated child is an error.
pub(crate) fn find_opt<'a>(
    buf: &'a [u8],
    kind: &[u8; 4],
    parent: &str,
) -> Result<Option<&'a [u8]>> {
    let mut found = None;
    let mut it = boxes(buf);
    for b in &mut it {
        let b = b?;
        if &b.kind == kind {
            if found.is_some() {
                return Err(Error::Mp4(format!(
                    "`{parent}` has more than one `{}` box",
                    fourcc(kind)
                )));
            }
            found = Some(b.body);
        }
    }
    if let Some(t) = it.truncated {
        return Err(Error::Mp4(format!(
            "box `{}` inside `{parent}` extends past its parent",
            t.kind
        )));
    }
    Ok(found)
}

/// Printable form of a four-character code.
pub(crate) fn fourcc(kind: &[u8; 4]) -> String {
    kind.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}
