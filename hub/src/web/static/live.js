// Live feed: first page from /api/events, then SSE (/api/live) upserts rows.
// The DOM holds at most MAX_ROWS rows; older ones are paged in on demand.
"use strict";
(() => {
  const { api, el, fmtTime, clipBadge, toast } = Vigil;
  const MAX_ROWS = 300;
  const tbody = () => document.getElementById("event-rows");
  let nextBefore = null;

  function row(e) {
    const open = () => { location.href = "/events/" + encodeURIComponent(e.id); };
    const ack = e.acked_by
      ? el("span", { class: "badge ok", text: "✓ " + e.acked_by })
      : el("button", { type: "button", class: "ack-btn", "data-testid": "ack-" + e.id,
          "aria-label": "Acknowledge " + e.label + " on " + e.camera_id,
          onclick: async (ev) => {
            ev.stopPropagation();
            try { const r = await api("POST", "/api/events/" + encodeURIComponent(e.id) + "/ack"); upsert(r.event, false); }
            catch (x) { toast(x.message); }
          } }, "Acknowledge");
    const tr = el("tr", { "data-event-id": e.id, "data-cursor": e.cursor, "data-state": e.state, tabindex: "0",
        "aria-label": e.label + " on " + e.camera_id + ", " + e.state,
        onclick: open, onkeydown: (ev) => { if (ev.key === "Enter") open(); } },
      el("td", {}, e.thumb_url ? el("img", { class: "thumb", src: e.thumb_url, alt: "", loading: "lazy" }) : el("span", { class: "muted", text: "—" })),
      el("td", {}, el("a", { href: "/events/" + encodeURIComponent(e.id), text: e.camera_id }), el("div", { class: "muted", text: e.agent_id })),
      el("td", { text: e.label }),
      el("td", { text: Math.round(e.score * 100) + "%" }),
      el("td", { text: (e.zones || []).join(", ") }),
      el("td", {}, el("time", { datetime: e.start_utc, text: fmtTime(e.start_utc) })),
      el("td", {}, el("span", { class: "badge " + (e.state === "ongoing" ? "live" : ""), text: e.state })),
      el("td", {}, clipBadge(e.clip), e.flagged ? el("span", { class: "badge warn", text: "flagged" }) : null),
      el("td", {}, ack));
    return tr;
  }

  function upsert(e, live) {
    const body = tbody();
    const old = body.querySelector('tr[data-event-id="' + CSS.escape(e.id) + '"]');
    const tr = row(e);
    if (old) { old.replaceWith(tr); return; }
    if (!live) return;
    // New event: newest first. Only if it is newer than what is shown.
    const first = body.firstElementChild;
    if (!first || Number(first.dataset.cursor) < e.cursor) {
      tr.classList.add("new");
      body.prepend(tr);
      document.getElementById("events-empty").hidden = true;
      while (body.children.length > MAX_ROWS) {
        body.lastElementChild.remove();
        nextBefore = Number(body.lastElementChild.dataset.cursor);
        document.getElementById("load-more").hidden = false;
      }
    }
  }

  async function load(before) {
    const q = new URLSearchParams({ limit: "50" });
    if (before) q.set("before", before);
    const r = await api("GET", "/api/events?" + q);
    const body = tbody();
    if (!before) body.replaceChildren();
    for (const e of r.events) body.append(row(e));
    nextBefore = r.next_before;
    document.getElementById("load-more").hidden = !nextBefore;
    document.getElementById("events-empty").hidden = body.children.length > 0;
  }

  function connect() {
    const status = document.getElementById("live-status");
    const es = new EventSource("/api/live");
    es.onopen = () => { status.textContent = "live"; status.dataset.state = "live"; status.className = "badge live"; };
    es.onerror = () => { status.textContent = "reconnecting"; status.dataset.state = "reconnecting"; status.className = "badge warn"; };
    es.addEventListener("event", (m) => { try { upsert(JSON.parse(m.data), true); } catch (_) {} });
    es.addEventListener("alert", () => Vigil.refreshAlertCount());
    es.addEventListener("resync", () => load(null));
  }

  document.addEventListener("DOMContentLoaded", async () => {
    document.getElementById("load-more").addEventListener("click", () => load(nextBefore).catch((e) => toast(e.message)));
    try { await load(null); } catch (e) { toast(e.message); }
    connect();
  });
})();
