//! The operator's shift view over real HTTP: SSE live feed, pagination,
//! event detail with ack / note / flag, search filters, camera wall, alerts.

mod web_common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use web_common::{event_json, wait_for, TestHub};

/// Reads SSE frames until one named `name` whose data satisfies `pred`.
async fn next_sse<B: AsRef<[u8]> + std::fmt::Debug>(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<B>> + Unpin),
    buf: &mut String,
    name: &str,
    pred: impl Fn(&Value) -> bool,
    deadline: Duration,
) -> Value {
    let end = Instant::now() + deadline;
    loop {
        while let Some(i) = buf.find("\n\n") {
            let frame: String = buf.drain(..i + 2).collect();
            let mut ev = "message";
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    ev = if v.trim() == name { name } else { "other" };
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if ev == name {
                let v: Value = serde_json::from_str(&data).unwrap();
                if pred(&v) {
                    return v;
                }
            }
        }
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no SSE {name} within {deadline:?}");
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(b))) => buf.push_str(&String::from_utf8_lossy(b.as_ref())),
            Ok(other) => panic!("SSE stream ended: {other:?}"),
            Err(_) => panic!("no SSE {name} within {deadline:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_wakes_the_live_feed_without_waiting_for_the_tick() {
    // A poll tick far longer than the deadline: only the wake-up can deliver in time.
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let handle = wake.clone();
    let hub = TestHub::start(move |o| {
        o.poll_interval = Duration::from_secs(30);
        o.wake = handle;
    })
    .await;
    let op = hub.login("op").await;
    let r = op.req(Method::GET, "/api/live", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let mut buf = String::new();
    let idx = hub.index();
    for i in 0..3 {
        let id = format!("ev-woken-{i}");
        idx.insert_event(
            &id,
            "start",
            "agent-1",
            "cam-1",
            &event_json(&id, "start", "cam-1", "person", &[], None),
        )
        .unwrap();
        let t0 = Instant::now();
        wake.notify_one();
        let v = next_sse(
            &mut stream,
            &mut buf,
            "event",
            |v| v["id"] == id.as_str(),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(v["state"], "ongoing");
        println!("woken event-to-SSE latency: {:?}", t0.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_events_reach_the_page_within_a_second() {
    // The production poll interval, not the fast test one.
    let hub = TestHub::start(|o| o.poll_interval = Duration::from_millis(200)).await;
    let op = hub.login("op").await;
    let r = op.req(Method::GET, "/api/live", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut stream = r.bytes_stream();
    let mut buf = String::new();
    let idx = hub.index();
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let id = format!("ev-live-{i}");
        let t0 = Instant::now();
        // Written by another connection, as the ingest (maybe another process) does.
        idx.insert_event(
            &id,
            "start",
            "agent-1",
            "cam-1",
            &event_json(&id, "start", "cam-1", "person", &["door"], None),
        )
        .unwrap();
        let v = next_sse(
            &mut stream,
            &mut buf,
            "event",
            |v| v["id"] == id.as_str(),
            Duration::from_secs(1),
        )
        .await;
        worst = worst.max(t0.elapsed());
        assert_eq!(v["state"], "ongoing");
        assert_eq!(v["label"], "person");
        assert_eq!(v["zones"], json!(["door"]));
        assert!(v["thumb_url"].as_str().unwrap().ends_with("/thumb.jpg"));
    }
    println!("worst event-to-SSE latency: {worst:?}");
    // The end phase updates the same event.
    idx.insert_event(
        "ev-live-0",
        "end",
        "agent-1",
        "cam-1",
        &event_json("ev-live-0", "end", "cam-1", "person", &["yard"], None),
    )
    .unwrap();
    let v = next_sse(
        &mut stream,
        &mut buf,
        "event",
        |v| v["id"] == "ev-live-0",
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(v["state"], "ended");
    assert_eq!(v["zones"], json!(["door", "yard"]));
    // New stored alerts are pushed too.
    hub.sqlite()
        .execute("INSERT INTO alerts (kind, agent_id, camera_id, detail, at) VALUES ('tamper', 'agent-1', 'cam-1', 'seq 4 conflicts', 1)", [])
        .unwrap();
    let a = next_sse(
        &mut stream,
        &mut buf,
        "alert",
        |_| true,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(a["kind"], "tamper");
    // Shutdown ends the SSE stream (the server does not hang on it).
    drop(stream);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_pages_newest_first() {
    let hub = TestHub::start(|_| {}).await;
    let idx = hub.index();
    for i in 0..130 {
        let id = format!("ev-{i:03}");
        idx.insert_event(
            &id,
            "start",
            "agent-1",
            "cam-1",
            &event_json(&id, "start", "cam-1", "car", &[], None),
        )
        .unwrap();
    }
    let op = hub.login("op").await;
    wait_for("all events folded", Duration::from_secs(10), || async {
        let v = op.json("/api/events?limit=200").await;
        (v["events"].as_array().unwrap().len() == 130).then_some(())
    })
    .await;
    let mut seen = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let q = before.map(|b| format!("&before={b}")).unwrap_or_default();
        let v = op.json(&format!("/api/events?limit=50{q}")).await;
        let evs = v["events"].as_array().unwrap();
        assert!(evs.len() <= 50);
        seen.extend(evs.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        match v["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    let expected: Vec<String> = (0..130).rev().map(|i| format!("ev-{i:03}")).collect();
    assert_eq!(seen, expected, "newest first, no duplicates, none missing");
    let r = op
        .req(Method::GET, "/api/events?limit=50&bogus=1", None)
        .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "unknown filters are refused"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_detail_ack_note_flag_and_search() {
    let hub = TestHub::start(|_| {}).await;
    let idx = hub.index();
    idx.insert_event(
        "ev-a",
        "start",
        "agent-1",
        "cam-door",
        &event_json("ev-a", "start", "cam-door", "person", &["door"], None),
    )
    .unwrap();
    idx.insert_event(
        "ev-a",
        "end",
        "agent-1",
        "cam-door",
        &event_json("ev-a", "end", "cam-door", "person", &["door"], None),
    )
    .unwrap();
    idx.insert_event(
        "ev-b",
        "start",
        "agent-2",
        "cam-yard",
        &event_json("ev-b", "start", "cam-yard", "car", &["yard"], None),
    )
    .unwrap();
    let op = hub.login("op").await;
    wait_for("events folded", Duration::from_secs(5), || async {
        (op.json("/api/events").await["events"]
            .as_array()
            .unwrap()
            .len()
            == 2)
            .then_some(())
    })
    .await;
    let d = op.json("/api/events/ev-a").await;
    assert_eq!(d["event"]["state"], "ended");
    assert_eq!(d["event"]["clip"], "none");
    assert_eq!(d["best_box"]["x2"], 110.0);
    assert_eq!(d["end_reason"], "left");
    let snap = d["snapshot"]["url"].as_str().unwrap().to_string();
    let r = op.req(Method::GET, &snap, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(&r.bytes().await.unwrap()[..2], &[0xFF, 0xD8]);

    op.post("/api/events/ev-a/ack", json!({})).await;
    op.post(
        "/api/events/ev-a/notes",
        json!({"text": "Courier at the door"}),
    )
    .await;
    op.post("/api/events/ev-a/flag", json!({"flagged": true}))
        .await;
    let d = op.json("/api/events/ev-a").await;
    assert_eq!(d["event"]["acked_by"], "op");
    assert_eq!(d["event"]["flagged"], true);
    let kinds: Vec<&str> = d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    for k in ["start", "end", "ack", "note", "flag"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let note = d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "note")
        .unwrap();
    assert_eq!(note["text"], "Courier at the door");
    assert_eq!(note["by"], "op");
    let r = op
        .req(
            Method::POST,
            "/api/events/ev-a/notes",
            Some(json!({"text": "   "})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = op
        .req(Method::POST, "/api/events/nope/ack", Some(json!({})))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Investigator filters.
    let inv = hub.login("inv").await;
    let ids = |v: Value| -> Vec<String> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(inv.json("/api/events?flagged=true").await), ["ev-a"]);
    assert_eq!(ids(inv.json("/api/events?flagged=false").await), ["ev-b"]);
    assert_eq!(ids(inv.json("/api/events?zone=yard").await), ["ev-b"]);
    assert_eq!(ids(inv.json("/api/events?label=person").await), ["ev-a"]);
    assert_eq!(ids(inv.json("/api/events?camera=cam-yard").await), ["ev-b"]);
    assert_eq!(ids(inv.json("/api/events?agent=agent-1").await), ["ev-a"]);
    assert_eq!(
        inv.json("/api/events?from=2026-11-23T09:59&to=2026-11-23T10:01")
            .await["events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(ids(inv.json("/api/events?from=2026-11-23T10:01").await).is_empty());
    let r = inv
        .req(Method::GET, "/api/events?from=yesterday", None)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The ack is in the audit log.
    let adm = hub.login("adm").await;
    let a = adm.json("/api/audit").await;
    assert!(a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "event_ack" && e["subject"] == "ev-a" && e["actor"] == "op"));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_wall_and_down_alerts() {
    let hub = TestHub::start(|o| o.camera_down_alert_seconds = 60).await;
    let c = hub.sqlite();
    c.execute(
        "INSERT INTO agent_status (agent_id, json, received_at) VALUES ('agent-up', ?1, 100)",
        [
            json!({"state": "online", "version": "0.1.0", "since": "2026-11-23T09:00:00Z"})
                .to_string(),
        ],
    )
    .unwrap();
    c.execute(
        "INSERT INTO agent_status (agent_id, json, received_at) VALUES ('agent-gone', ?1, 100)",
        [
            json!({"state": "offline", "version": "0.1.0", "since": "2026-11-23T09:30:00Z"})
                .to_string(),
        ],
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    for (agent, cam, state, reason, since) in [
        (
            "agent-up",
            "cam-ok",
            "streaming",
            None,
            fmt(now - time::Duration::hours(1)),
        ),
        (
            "agent-up",
            "cam-flaky",
            "retrying",
            Some("401 Unauthorized: check the camera password"),
            fmt(now - time::Duration::minutes(5)),
        ),
        (
            "agent-up",
            "cam-blip",
            "retrying",
            Some("timeout"),
            fmt(now - time::Duration::seconds(5)),
        ),
        (
            "agent-gone",
            "cam-x",
            "streaming",
            None,
            fmt(now - time::Duration::hours(2)),
        ),
    ] {
        c.execute(
            "INSERT INTO camera_health (agent_id, camera_id, state, reason, since, json, received_at) VALUES (?1, ?2, ?3, ?4, ?5, '{}', 100)",
            rusqlite::params![agent, cam, state, reason, since],
        ).unwrap();
    }
    c.execute("INSERT INTO snapshots (agent_id, camera_id, jpeg, taken_utc, received_at) VALUES ('agent-up', 'cam-ok', ?1, '2026-11-23T10:00:00Z', 100)",
        [vec![0xFFu8, 0xD8, 0xFF, 0xD9]]).unwrap();
    c.execute("INSERT INTO alerts (kind, agent_id, camera_id, detail, at) VALUES ('outbox_drop', 'agent-up', 'cam-ok', 'dropped 3 events', 1)", []).unwrap();
    let op = hub.login("op").await;
    let w = op.json("/api/cameras").await;
    let agents = w["agents"].as_array().unwrap();
    assert_eq!(
        agents[0]["agent_id"], "agent-gone",
        "offline agents come first"
    );
    assert_eq!(agents[0]["status"], "offline");
    assert_eq!(agents[0]["cameras"][0]["state"], "offline");
    let up = agents.iter().find(|a| a["agent_id"] == "agent-up").unwrap();
    let cam = |id: &str| {
        up["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["camera_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(cam("cam-flaky")["state"], "retrying");
    assert_eq!(
        cam("cam-flaky")["reason"],
        "401 Unauthorized: check the camera password"
    );
    let url = cam("cam-ok")["snapshot_url"].as_str().unwrap().to_string();
    let r = op.req(Method::GET, &url, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let a = op.json("/api/alerts").await;
    let conds = a["conditions"].as_array().unwrap();
    assert!(conds
        .iter()
        .any(|c| c["kind"] == "agent_offline" && c["agent_id"] == "agent-gone"));
    assert!(conds
        .iter()
        .any(|c| c["kind"] == "camera_down" && c["camera_id"] == "cam-flaky"));
    assert!(
        !conds.iter().any(|c| c["camera_id"] == "cam-blip"),
        "5 s is under the 60 s threshold"
    );
    let stored = a["alerts"].as_array().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["kind"], "outbox_drop");
    let id = stored[0]["id"].as_i64().unwrap();
    op.post(&format!("/api/alerts/{id}/ack"), json!({})).await;
    assert!(op.json("/api/alerts").await["alerts"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        op.json("/api/alerts?all=true").await["alerts"][0]["acked_by"],
        "op"
    );
    hub.stop().await;
}
