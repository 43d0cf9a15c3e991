// Recordings: the completeness timeline of a camera, pulls and holds, and a player
// that plays a pulled window's pieces as one seekable timeline.
"use strict";
(() => {
  const { api, el, fmtTime, toast } = Vigil;
  const LABELS = { hub: "at the hub", edge: "on the box", deleted: "deleted by policy", not_recorded: "not recorded", missing: "MISSING", pending: "not reported" };
  const iso = (ms) => new Date(ms).toISOString();
  const local = (ms) => iso(ms).slice(0, 19);
  const fromLocal = (v) => (v ? v + (v.length === 16 ? ":00Z" : "Z") : "");
  let cameras = [];

  function selected() {
    const v = document.getElementById("r-camera").value;
    return cameras.find((c) => c.agent_id + "/" + c.camera_id === v);
  }

  async function loadTimeline() {
    const cam = selected();
    if (!cam) return;
    const from = fromLocal(document.getElementById("r-from").value);
    const to = fromLocal(document.getElementById("r-to").value);
    const q = new URLSearchParams({ from, to });
    const r = await api("GET", "/api/recordings/" + encodeURIComponent(cam.agent_id) + "/" + encodeURIComponent(cam.camera_id) + "/timeline?" + q);
    const total = r.to_ms - r.from_ms;
    const bar = document.getElementById("timeline");
    bar.replaceChildren(...r.spans.map((s) => el("span", {
      class: "span " + s.state, "data-state": s.state, title: LABELS[s.state] + ": " + fmtTime(iso(s.from_ms)) + " – " + fmtTime(iso(s.to_ms)) + " " + s.detail,
      style: "left:" + (100 * (s.from_ms - r.from_ms) / total) + "%;width:" + Math.max(0.2, 100 * (s.to_ms - s.from_ms) / total) + "%",
    })));
    document.getElementById("span-rows").replaceChildren(...r.spans.map((s) => el("tr", { class: s.state, "data-state": s.state },
      el("td", { text: fmtTime(iso(s.from_ms)) }), el("td", { text: fmtTime(iso(s.to_ms)) }),
      el("td", {}, el("span", { class: "badge " + (s.state === "missing" ? "bad" : s.state === "hub" ? "ok" : ""), text: LABELS[s.state] })),
      el("td", { text: s.seq == null ? "" : String(s.seq) }), el("td", { text: s.detail }))));
  }

  async function loadRequests() {
    const r = await api("GET", "/api/recordings/requests");
    document.getElementById("request-rows").replaceChildren(...r.requests.map((q) => el("tr", { "data-request-id": q.id, "data-status": q.status },
      el("td", { text: q.kind }), el("td", { text: q.agent_id + " / " + q.camera_id }),
      el("td", { text: fmtTime(q.from) + " – " + fmtTime(q.to) }), el("td", { text: q.case_number }),
      el("td", { text: q.requested_by }), el("td", {}, el("span", { class: "badge " + (q.status === "complete" ? "ok" : ""), text: q.status })),
      el("td", { text: q.pieces_stored + " of " + q.pieces_known + " stored" + (q.pieces_deleted ? ", " + q.pieces_deleted + " deleted by policy" : "") }),
      el("td", {},
        q.stored.length ? el("button", { type: "button", class: "play", onclick: () => play(q) }, "Play") : "",
        q.stored.length ? el("button", { type: "button", class: "export", onclick: async () => {
          try {
            const x = await api("POST", "/api/exports", { case_number: q.case_number,
              window: { agent_id: q.agent_id, camera_id: q.camera_id, from: q.from, to: q.to } });
            toast("Export ready");
            location.href = x.download_url;
          } catch (e) { toast(e.message); }
        } }, "Export") : "",
        q.kind === "hold" && q.status === "active" ? el("button", { type: "button", class: "release", onclick: async () => {
          try { await api("POST", "/api/recordings/requests/" + q.id + "/release"); await loadRequests(); } catch (e) { toast(e.message); }
        } }, "Release hold") : ""))));
  }

  // Pieces play one after another; the range input seeks across all of them.
  function play(q) {
    const pieces = q.stored.slice().sort((a, b) => a.start_ms - b.start_ms);
    const t0 = pieces[0].start_ms;
    const total = (pieces[pieces.length - 1].end_ms - t0) / 1000;
    const video = document.getElementById("player");
    const seek = document.getElementById("player-seek");
    const pos = document.getElementById("player-pos");
    document.getElementById("player-section").hidden = false;
    seek.max = String(total);
    let current = -1;
    const load = (i, offset) => {
      current = i;
      video.src = pieces[i].url;
      video.dataset.piece = pieces[i].clip_id;
      video.dataset.index = String(i);
      video.addEventListener("loadedmetadata", () => { video.currentTime = offset; video.play().catch(() => {}); }, { once: true });
    };
    video.onended = () => { if (current + 1 < pieces.length) load(current + 1, 0); };
    video.ontimeupdate = () => {
      const global = (pieces[current].start_ms - t0) / 1000 + video.currentTime;
      seek.value = String(global);
      video.dataset.global = global.toFixed(2);
      pos.textContent = "piece " + (current + 1) + " of " + pieces.length + ", " + fmtTime(iso(t0 + global * 1000));
    };
    seek.oninput = () => {
      const at = t0 + Number(seek.value) * 1000;
      let i = pieces.findIndex((p) => at < p.end_ms);
      if (i < 0) i = pieces.length - 1;
      const offset = Math.max(0, (at - pieces[i].start_ms) / 1000);
      if (i === current) video.currentTime = offset; else load(i, offset);
    };
    load(0, 0);
  }

  document.addEventListener("DOMContentLoaded", async () => {
    try {
      const r = await api("GET", "/api/recordings/cameras");
      cameras = r.cameras;
      document.getElementById("no-recordings").hidden = cameras.length > 0;
      document.getElementById("r-camera").replaceChildren(...cameras.map((c) => el("option", { value: c.agent_id + "/" + c.camera_id, text: c.agent_id + " / " + c.camera_id })));
      const now = Date.now();
      document.getElementById("r-to").value = local(now);
      document.getElementById("r-from").value = local(now - 3600 * 1000);
      await loadTimeline();
      await loadRequests();
    } catch (e) { toast(e.message); }
    document.getElementById("timeline-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadTimeline().catch((e) => toast(e.message)); });
    document.getElementById("r-camera").addEventListener("change", () => loadTimeline().catch((e) => toast(e.message)));
    document.getElementById("request-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const cam = selected();
      if (!cam) { toast("choose a camera first"); return; }
      try {
        await api("POST", "/api/recordings/requests", {
          kind: document.getElementById("q-kind").value, agent_id: cam.agent_id, camera_id: cam.camera_id,
          from: fromLocal(document.getElementById("r-from").value), to: fromLocal(document.getElementById("r-to").value),
          case_number: document.getElementById("q-case").value, reason: document.getElementById("q-reason").value,
        });
        toast("Requested");
        await loadRequests();
      } catch (e) { toast(e.message); }
    });
    setInterval(() => { loadRequests().catch(() => {}); loadTimeline().catch(() => {}); }, 5000);
  });
})();
