// Event detail: snapshot, clip playback (range requests), timeline, ack / note / flag.
"use strict";
(() => {
  const { api, el, fmtTime, clipBadge, toast } = Vigil;
  const root = () => document.getElementById("event");
  const id = () => root().dataset.eventId;
  const base = () => "/api/events/" + encodeURIComponent(id());
  let flagged = false;

  function play(c) {
    const v = document.getElementById("clip");
    v.hidden = false;
    v.dataset.clipId = c.clip_id;
    v.src = c.url;
  }

  function render(d) {
    const e = d.event;
    document.getElementById("event-title").textContent = e.label + " on " + e.camera_id;
    const meta = document.getElementById("event-meta");
    // replaceChildren() would print a null as the text "null": drop absent parts.
    const parts = ["Agent " + e.agent_id + " · " + Math.round(e.score * 100) + "% · started " + fmtTime(e.start_utc) +
      (e.end_utc ? " · ended " + fmtTime(e.end_utc) + (d.end_reason ? " (" + d.end_reason + ")" : "") : "") + " ",
      el("span", { class: "badge " + (e.state === "ongoing" ? "live" : ""), id: "event-state", text: e.state }), " ",
      clipBadge(e.clip), " ",
      e.acked_by ? el("span", { class: "badge ok", id: "acked-by", text: "acknowledged by " + e.acked_by }) : null,
      d.previous_event_id ? el("a", { href: "/events/" + encodeURIComponent(d.previous_event_id), text: " previous part" }) : null];
    meta.replaceChildren(...parts.filter((p) => p !== null));
    const img = document.getElementById("snapshot");
    if (d.snapshot) {
      if (img.getAttribute("src") !== d.snapshot.url) img.src = d.snapshot.url;
      img.hidden = false;
      const b = d.best_box;
      document.getElementById("snapshot-caption").textContent = b
        ? "Best box: (" + Math.round(b.x1) + ", " + Math.round(b.y1) + ") – (" + Math.round(b.x2) + ", " + Math.round(b.y2) + ")" : "";
    }
    const stored = d.clips.filter((c) => c.stored);
    document.getElementById("clip-none").hidden = stored.length > 0;
    const v = document.getElementById("clip");
    if (stored.length && !v.dataset.clipId) play(stored[0]);
    document.getElementById("clip-list").replaceChildren(...d.clips.map((c, i) => el("li", { "data-clip-id": c.clip_id },
      c.stored ? el("button", { type: "button", class: "play-clip", onclick: () => play(c) }, "Play part " + (i + 1)) : el("span", { class: "muted", text: "part " + (i + 1) }),
      " ", clipBadge(c.status), " ",
      c.stored ? el("a", { href: c.download_url, class: "download-clip", text: "download" }) : null)));
    document.getElementById("zones").textContent = (e.zones || []).join(", ") || "none";
    document.getElementById("timeline").replaceChildren(...d.timeline.map((t) => el("li", { "data-kind": t.kind },
      el("time", { text: fmtTime(t.at) }), " ", el("strong", { text: t.kind }),
      t.by ? " by " + t.by : "", t.text ? ": " + t.text : "")));
    const ack = document.getElementById("ack");
    ack.disabled = !!e.acked_by;
    ack.textContent = e.acked_by ? "Acknowledged" : "Acknowledge";
    flagged = e.flagged;
    const flag = document.getElementById("flag");
    flag.setAttribute("aria-pressed", String(flagged));
    flag.textContent = flagged ? "Clear follow-up flag" : "Flag for follow-up";
  }

  const load = () => api("GET", base()).then(render);
  const act = (p) => p.then(load).catch((e) => toast(e.message));

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("ack").addEventListener("click", () => act(api("POST", base() + "/ack")));
    document.getElementById("flag").addEventListener("click", () => act(api("POST", base() + "/flag", { flagged: !flagged })));
    document.getElementById("note-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = document.getElementById("note-text");
      act(api("POST", base() + "/notes", { text: t.value }).then(() => { t.value = ""; }));
    });
    load().catch((e) => toast(e.message));
    setInterval(() => { if (document.getElementById("event-state").textContent === "ongoing") load().catch(() => {}); }, 3000);
  });
})();
