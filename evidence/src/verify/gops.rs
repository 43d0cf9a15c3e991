//! Compares a manifest's GOP list with the GOPs found in a clip file and
//! names each difference: altered, dropped, inserted, reordered, truncated.

use std::collections::HashMap;

use crate::clip::{ClipScan, GopEntry};
use crate::digest::Sha256Digest;

/// One difference, in the manifest's GOP numbering where there is one.
pub(super) struct GopProblem {
    pub(super) gop: Option<u32>,
    pub(super) message: String,
}

/// Returns every difference; empty means the video data is intact.
pub(super) fn compare(want: &[GopEntry], found: &ClipScan) -> Vec<GopProblem> {
    let mut out = Vec::new();
    if let Some(e) = &found.error {
        out.push(GopProblem {
            gop: None,
            message: format!(
                "The video data cannot be read ({e}); none of the {} GOPs can be checked.",
                want.len()
            ),
        });
        return out;
    }
    let got = &found.gops;
    // Undamaged GOPs in the file, by hash -> positions.
    let mut by_hash: HashMap<Sha256Digest, Vec<usize>> = HashMap::new();
    for (j, g) in got.iter().enumerate() {
        if g.damage.is_none() {
            by_hash.entry(g.entry.sha256).or_default().push(j);
        }
    }
    let same = |w: &GopEntry, j: usize| {
        got.get(j).is_some_and(|g| {
            g.damage.is_none() && g.entry.sha256 == w.sha256 && g.entry.nal_count == w.nal_count
        })
    };
    let mut matched_file = vec![false; got.len()];
    let mut positions: Vec<(u32, usize)> = Vec::new();
    let mut unmatched: Vec<&GopEntry> = Vec::new();
    for (i, w) in want.iter().enumerate() {
        let j = if same(w, i) {
            Some(i)
        } else {
            by_hash
                .get(&w.sha256)
                .and_then(|js| js.iter().copied().find(|&j| !matched_file[j] && same(w, j)))
        };
        match j {
            Some(j) if !matched_file[j] => {
                matched_file[j] = true;
                positions.push((w.index, j));
            }
            _ => unmatched.push(w),
        }
    }
    for w in unmatched {
        let i = w.index as usize;
        let message = match got.get(i) {
            Some(_) if found.truncated.is_some() && i + 1 == got.len() && !matched_file[i] => {
                format!(
                    "GOP {} (pts {} ms) incomplete: the file is truncated inside it.",
                    w.index, w.pts_ms
                )
            }
            Some(g) if !matched_file[i] => match &g.damage {
                Some(d) => format!(
                    "GOP {} (pts {} ms) altered: its NAL structure is broken ({d}).",
                    w.index, w.pts_ms
                ),
                None => format!(
                    "GOP {} (pts {} ms) altered: its SHA-256 differs from the manifest.",
                    w.index, w.pts_ms
                ),
            },
            None if found.truncated.is_some() => format!(
                "GOP {} (pts {} ms) missing: the file is truncated ({}).",
                w.index,
                w.pts_ms,
                found.truncated.as_deref().unwrap_or_default()
            ),
            _ => format!(
                "GOP {} (pts {} ms) dropped: no GOP in the file has its hash.",
                w.index, w.pts_ms
            ),
        };
        out.push(GopProblem {
            gop: Some(w.index),
            message,
        });
    }
    for (j, g) in got.iter().enumerate() {
        let paired_as_altered = out.iter().any(|p| {
            p.gop == Some(j as u32)
                && (p.message.contains("altered") || p.message.contains("incomplete"))
        });
        if !matched_file[j] && !paired_as_altered {
            out.push(GopProblem {
                gop: None,
                message: format!("The file has a GOP at position {j} (pts {} ms) that is not in the manifest (inserted).", g.entry.pts_ms),
            });
        }
    }
    // Matched GOPs must appear in manifest order.
    for pair in positions.windows(2) {
        if pair[1].1 < pair[0].1 {
            out.push(GopProblem {
                gop: Some(pair[1].0),
                message: format!(
                    "GOPs reordered: manifest GOP {} appears at file position {}, before GOP {} at position {}.",
                    pair[1].0, pair[1].1, pair[0].0, pair[0].1
                ),
            });
        }
    }
    if want.len() == got.len() && out.is_empty() && found.truncated.is_some() {
        out.push(GopProblem {
            gop: None,
            message: "The file is truncated after its last GOP.".into(),
        });
    }
    out
}
