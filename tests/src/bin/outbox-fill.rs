//! Fills an agent outbox with signed clips and event messages, as a busy agent would
//! leave it, for the hub memory benchmark (`bench/memory.sh`): `vigil-agent deliver`
//! then hands it all to a hub.
//!
//! Clips are real: the file's access units (camera bytes, never re-encoded) grouped into
//! GOPs, `--gops` consecutive GOPs per clip starting one GOP further each time, sealed
//! by the agent's own `Sealer` into one chain (a `chain_reset` record first). A file of
//! G GOPs gives G distinct clips; past that, windows repeat (the hub stores repeated
//! bytes once, content-addressed; each clip still gets its own manifest, seq and row).
//! Events are start/update/end messages of 1..n events, no snapshot.
//!
//! Usage: outbox-fill --file MP4 --key KEY --chain DIR --outbox DIR --agent-id ID
//!        --clips N --events M [--gops K]
//! Prints `{"clips":N,"events":M,"distinct_clips":D,"clip_bytes":B}`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use time::OffsetDateTime;
use vigil_agent::detect::{EventMessage, EventPhase};
use vigil_agent::ingest::ring::{AccessUnit, Gop, GopRing};
use vigil_agent::outbox::Outbox;
use vigil_agent::seal::{ClipMeta, Sealer};
use vigil_evidence::chain::ChainStore;
use vigil_evidence::keys::SigningKey;

const CAMERA: &str = "cam1";

fn args() -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let Some(name) = k.strip_prefix("--") else {
            bail!("unexpected argument {k:?}; see the usage in tests/src/bin/outbox-fill.rs");
        };
        let v = it
            .next()
            .with_context(|| format!("--{name} needs a value"))?;
        out.insert(name.to_string(), v);
    }
    Ok(out)
}

/// The file's access units as the agent's recording branch has them: H.264
/// byte-stream, one access unit per buffer, plus the caps for the muxer. An error on
/// the bus (not an MP4 with H.264) ends the read.
fn load_gops(file: &std::path::Path) -> Result<(Vec<Gop>, gst::Caps)> {
    gst::init()?;
    let desc = format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false",
        file.display()
    );
    let pipeline = gst::parse::launch(&desc)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let sink = pipeline
        .by_name("sink")
        .context("no appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| anyhow::anyhow!("not an appsink"))?;
    pipeline.set_state(gst::State::Playing)?;
    // The agent's own ring groups the units into GOPs (unbounded here: the whole file).
    let mut ring = GopRing::new(Duration::MAX, usize::MAX);
    let mut caps = None;
    while let Ok(sample) = sink.pull_sample() {
        if caps.is_none() {
            caps = sample.caps().map(|c| c.to_owned());
        }
        let Some(buffer) = sample.buffer_owned() else {
            continue;
        };
        ring.push(AccessUnit {
            pts: buffer.pts(),
            dts: buffer.dts(),
            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            wall: OffsetDateTime::now_utc(),
            buffer,
        });
    }
    let bus_error = pipeline.bus().and_then(|b| {
        b.pop_filtered(&[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(e.error().to_string()),
                _ => None,
            })
    });
    pipeline.set_state(gst::State::Null)?;
    if let Some(e) = bus_error {
        bail!("cannot read {}: {e}", file.display());
    }
    let caps = caps.context("the file gave no video access units")?;
    let gops = ring.all();
    if gops.is_empty() {
        bail!("no key frame in {}", file.display());
    }
    Ok((gops, caps))
}

fn event_message(id: uuid::Uuid, n: u64, phase: EventPhase) -> Result<EventMessage> {
    let now = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .context("time")?;
    let end = phase == EventPhase::End;
    let v = serde_json::json!({
        "phase": phase,
        "event": {
            "id": id, "camera_id": CAMERA, "label": "person", "top_score": 0.8,
            "best_box": [10.0, 20.0, 110.0, 220.0],
            "zones": [], "start_utc": now, "end_utc": if end { Some(now.clone()) } else { None },
            "start_pts_ms": n * 1000, "end_pts_ms": if end { Some(n * 1000 + 500) } else { None },
            "end_reason": if end { Some("left") } else { None },
            "previous_event_id": null, "clip_id": null, "snapshot": null
        }
    });
    Ok(serde_json::from_value(v)?)
}

fn main() -> Result<()> {
    let a = args()?;
    let get = |k: &str| a.get(k).with_context(|| format!("--{k} is required"));
    let file = PathBuf::from(get("file")?);
    let key = SigningKey::load(&PathBuf::from(get("key")?))?;
    let mut chain = ChainStore::open(&PathBuf::from(get("chain")?))?;
    let outbox = Outbox::open(&PathBuf::from(get("outbox")?), u64::MAX)?;
    let agent_id = get("agent-id")?.clone();
    let clips: usize = get("clips")?.parse().context("--clips")?;
    let events: u64 = get("events")?.parse().context("--events")?;
    let per_clip: usize = a
        .get("gops")
        .map_or(Ok(1), |v| v.parse())
        .context("--gops")?;

    let (gops, caps) = load_gops(&file)?;
    if per_clip == 0 || per_clip > gops.len() {
        bail!("--gops {per_clip}: the file has {} GOPs", gops.len());
    }
    let now = OffsetDateTime::now_utc();
    if let Some(reset) = chain.ensure_segment(&key, &agent_id, "bench", CAMERA, now)? {
        outbox.put_record(
            CAMERA,
            "chain_reset",
            reset.canonical_bytes(),
            &reset.signature_file(),
        )?;
    }
    let windows = gops.len() - per_clip + 1;
    let mut clip_bytes = 0u64;
    let mut sealer = Sealer {
        key: &key,
        chain: &mut chain,
        agent_id: &agent_id,
        model: None,
        ledger: None,
    };
    for i in 0..clips {
        let start = i % windows;
        let clip_id = uuid::Uuid::now_v7();
        let (signed, _) = sealer.seal(
            CAMERA,
            &gops[start..start + per_clip],
            &caps,
            ClipMeta {
                clip_id,
                events: Vec::new(),
                part: None,
                piece: None,
            },
            &outbox.clip_dir(clip_id),
        )?;
        clip_bytes += signed.record().file.size;
    }
    // Events as an agent sends them: start, one update, end; the last one may be partial.
    let mut written = 0u64;
    let mut n = 0u64;
    while written < events {
        let id = uuid::Uuid::now_v7();
        for phase in [EventPhase::Start, EventPhase::Update, EventPhase::End] {
            if written == events {
                break;
            }
            outbox.put_event(&event_message(id, n, phase)?)?;
            written += 1;
        }
        n += 1;
    }
    println!(
        "{}",
        serde_json::json!({"clips": clips, "events": events, "distinct_clips": windows.min(clips), "clip_bytes": clip_bytes})
    );
    Ok(())
}
