//! H.264 NAL units and access units, for comparing what a client received (or what a
//! clip holds) with the source file's bytes. Only VCL NAL units (types 1..=5) are
//! compared: parameter sets, SEI and delimiters may legitimately be added or moved.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

use crate::mp4::VideoTrack;

/// The NAL unit type (low 5 bits of the header byte).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Coded slice NAL units: non-IDR (1), partitions (2..=4), IDR (5).
pub fn is_vcl(nal: &[u8]) -> bool {
    (1..=5).contains(&nal_type(nal))
}

/// One access unit reduced to its VCL NAL units, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub vcl: Vec<Vec<u8>>,
}

impl AccessUnit {
    /// Holds an IDR slice.
    pub fn is_idr(&self) -> bool {
        self.vcl.iter().any(|n| nal_type(n) == 5)
    }

    /// Total VCL bytes.
    pub fn len(&self) -> usize {
        self.vcl.iter().map(Vec::len).sum()
    }

    /// No VCL data at all.
    pub fn is_empty(&self) -> bool {
        self.vcl.is_empty()
    }
}

/// Split an Annex B byte stream into NAL units (start codes and trailing zeros removed).
pub fn split_annexb(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(stream.len(), |&next| next - 3);
        let mut nal = &stream[s..end];
        // Zero bytes before a start code belong to it (or are trailing_zero_8bits).
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if !nal.is_empty() {
            nals.push(nal);
        }
    }
    nals
}

/// Split a length-prefixed sample (MP4 format) into NAL units.
pub fn split_length_prefixed(mut sample: &[u8], length_size: usize) -> Result<Vec<&[u8]>> {
    ensure!(
        (1..=4).contains(&length_size),
        "bad NAL length size {length_size}"
    );
    let mut nals = Vec::new();
    while !sample.is_empty() {
        ensure!(sample.len() >= length_size, "truncated NAL length prefix");
        let len = sample[..length_size]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let nal = sample
            .get(length_size..length_size + len)
            .context("NAL unit runs past the end of its sample")?;
        nals.push(nal);
        sample = &sample[length_size + len..];
    }
    Ok(nals)
}

/// The VCL NAL units of `nals`, copied.
fn vcl_of<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> AccessUnit {
    AccessUnit {
        vcl: nals
            .into_iter()
            .filter(|n| is_vcl(n))
            .map(<[u8]>::to_vec)
            .collect(),
    }
}

/// Access units of an MP4 file's video track, in decode order.
pub fn access_units_of_mp4(path: &Path) -> Result<(VideoTrack, Vec<AccessUnit>)> {
    let track = VideoTrack::read(path)?;
    let aus = access_units_of_track(&track)?;
    Ok((track, aus))
}

/// Access units of a parsed track, in decode order.
pub fn access_units_of_track(track: &VideoTrack) -> Result<Vec<AccessUnit>> {
    track
        .samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let nals = split_length_prefixed(&s.data, track.length_size)
                .with_context(|| format!("sample {i}"))?;
            Ok(vcl_of(nals))
        })
        .collect()
}

/// An Annex B buffer that holds exactly one access unit (e.g. one `alignment=au` buffer).
pub fn access_unit_of_annexb(buffer: &[u8]) -> AccessUnit {
    vcl_of(split_annexb(buffer))
}

/// Group an Annex B stream with no known boundaries into access units: a new one starts
/// at an AUD/SEI/SPS/PPS after a slice, or at a slice whose `first_mb_in_slice` is 0.
pub fn access_units_of_annexb(stream: &[u8]) -> Vec<AccessUnit> {
    let mut aus = Vec::new();
    let mut current: Vec<&[u8]> = Vec::new();
    let mut seen_vcl = false;
    for nal in split_annexb(stream) {
        let t = nal_type(nal);
        let first_mb_zero = nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_new = seen_vcl && (matches!(t, 6..=9) || (is_vcl(nal) && first_mb_zero));
        if starts_new {
            aus.push(vcl_of(current.drain(..)));
            seen_vcl = false;
        }
        seen_vcl |= is_vcl(nal);
        current.push(nal);
    }
    if seen_vcl {
        aus.push(vcl_of(current));
    }
    aus
}

/// Where a received run of access units sits in the (looping) source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alignment {
    /// Index of the first compared received unit (the first IDR).
    pub received_start: usize,
    /// Index of the matching source unit.
    pub source_start: usize,
    /// Units compared (all equal).
    pub matched: usize,
}

/// Check that `received`, from its first IDR on, equals consecutive source access units
/// (wrapping around at the end of the source, as a looping camera does).
pub fn align_on_first_idr(source: &[AccessUnit], received: &[AccessUnit]) -> Result<Alignment> {
    ensure!(!source.is_empty(), "source has no access units");
    let received_start = received
        .iter()
        .position(AccessUnit::is_idr)
        .with_context(|| format!("no IDR among {} received access units", received.len()))?;
    align_at(source, received, received_start)
}

/// Like [`align_on_first_idr`], but requires the very first received unit to match.
pub fn align_from_first(source: &[AccessUnit], received: &[AccessUnit]) -> Result<Alignment> {
    ensure!(!received.is_empty(), "nothing received");
    align_at(source, received, 0)
}

fn align_at(
    source: &[AccessUnit],
    received: &[AccessUnit],
    received_start: usize,
) -> Result<Alignment> {
    let first = &received[received_start];
    let candidates: Vec<usize> = (0..source.len()).filter(|&i| source[i] == *first).collect();
    let Some(&source_start) = candidates.first() else {
        bail!(
            "received access unit {received_start} ({} bytes, {} VCL NALs, idr={}) equals no \
             source access unit: the bytes were changed (re-encoded?)",
            first.len(),
            first.vcl.len(),
            first.is_idr()
        );
    };
    for (k, got) in received[received_start..].iter().enumerate() {
        let want = &source[(source_start + k) % source.len()];
        if got != want {
            bail!(
                "received access unit {} differs from source access unit {}: {} VCL NALs / {} \
                 bytes received vs {} / {} in the source",
                received_start + k,
                (source_start + k) % source.len(),
                got.vcl.len(),
                got.len(),
                want.vcl.len(),
                want.len()
            );
        }
    }
    Ok(Alignment {
        received_start,
        source_start,
        matched: received.len() - received_start,
    })
}
