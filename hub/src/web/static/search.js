// Investigator search (events or clips) and evidence export.
"use strict";
(() => {
  const { api, el, fmtTime, clipBadge, toast } = Vigil;
  let kind = "events", next = null, query = null;

  function params(before) {
    const f = document.getElementById("search-form");
    const q = new URLSearchParams();
    for (const name of ["camera", "agent", "from", "to", "label", "zone", "flagged"]) {
      const v = f.elements[name].value.trim();
      if (v && v !== "any") q.set(name, v);
    }
    q.set("limit", "50");
    if (before) q.set("before", before);
    return q;
  }

  function head() {
    const cols = kind === "events"
      ? ["Select", "Snapshot", "Camera", "Label", "Score", "Zones", "Time (UTC)", "State", "Clip"]
      : ["Select", "Clip", "Camera", "Start (UTC)", "End (UTC)", "Labels", "Size", "Verify"];
    document.getElementById("results-head").replaceChildren(el("tr", {}, ...cols.map((c) => el("th", { scope: "col", text: c }))));
  }

  function eventRow(e) {
    return el("tr", { "data-event-id": e.id },
      el("td", {}, el("input", { type: "checkbox", class: "pick", "data-event-id": e.id, "aria-label": "Select event " + e.label + " " + e.camera_id, disabled: e.clip !== "verified" })),
      el("td", {}, e.thumb_url ? el("img", { class: "thumb", src: e.thumb_url, alt: "" }) : ""),
      el("td", {}, el("a", { href: "/events/" + encodeURIComponent(e.id), text: e.camera_id }), el("div", { class: "muted", text: e.agent_id })),
      el("td", { text: e.label }), el("td", { text: Math.round(e.score * 100) + "%" }),
      el("td", { text: (e.zones || []).join(", ") }), el("td", { text: fmtTime(e.start_utc) }),
      el("td", { text: e.state + (e.flagged ? " · flagged" : "") }), el("td", {}, clipBadge(e.clip)));
  }

  function clipRow(c) {
    const status = c.verify.status;
    return el("tr", { "data-clip-id": c.clip_id },
      el("td", {}, el("input", { type: "checkbox", class: "pick", "data-clip-id": c.clip_id, "aria-label": "Select clip " + c.clip_id })),
      el("td", {}, el("a", { href: c.url, text: c.clip_id.slice(0, 8) }), " ",
        el("button", { type: "button", class: "reverify", onclick: async () => {
          try { const r = await api("POST", "/api/clips/" + c.clip_id + "/verify"); toast(r.ok ? "Verified: " + r.detail : "FAILED: " + r.detail); run(null); } catch (e) { toast(e.message); }
        } }, "Re-verify")),
      el("td", { text: c.agent_id + " / " + c.camera_id }), el("td", { text: fmtTime(c.start_utc) }), el("td", { text: fmtTime(c.end_utc) }),
      el("td", { text: (c.labels || []).join(", ") }), el("td", { text: (c.size / 1e6).toFixed(1) + " MB" }),
      el("td", {}, clipBadge(status), el("span", { class: "muted", text: " " + (c.verify.by === "ingest" ? "at ingest" : "re-checked " + fmtTime(c.verify.at)) })));
  }

  // Only the latest search renders: the page's own first search can answer after the
  // user's, and its rows replaced the user's results (and the boxes ticked in them).
  let latest = 0;
  // The results table is aria-busy while a search it will show is running: rows (and
  // ticks) on screen then are about to be replaced.
  async function run(before) {
    const mine = ++latest;
    const body = document.getElementById("result-rows");
    const table = body.closest("table");
    table.setAttribute("aria-busy", "true");
    try {
      if (!before) { query = params(null); head(); }
      const q = params(before);
      const r = await api("GET", (kind === "events" ? "/api/events?" : "/api/clips?") + q);
      if (mine !== latest) return;
      if (!before) body.replaceChildren();
      const items = kind === "events" ? r.events : r.clips;
      for (const x of items) body.append(kind === "events" ? eventRow(x) : clipRow(x));
      next = r.next_before;
      document.getElementById("results-more").hidden = !next;
      document.getElementById("results-empty").hidden = body.children.length > 0;
    } finally {
      if (mine === latest) table.setAttribute("aria-busy", "false");
    }
  }

  async function loadExports() {
    const r = await api("GET", "/api/exports");
    document.getElementById("exports").replaceChildren(...r.exports.map((x) => el("li", { "data-export-id": x.id },
      el("a", { href: x.download_url, text: x.file_name }), " — case " + x.case_number + ", by " + x.requested_by + ", " + fmtTime(x.created_at) +
      ", " + x.clips.length + " clip(s), sha256 " + x.sha256.slice(0, 16) + "…")));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("search-form");
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      kind = form.elements.kind.value;
      run(null).catch((e) => toast(e.message));
    });
    document.getElementById("results-more").addEventListener("click", () => run(next).catch((e) => toast(e.message)));
    document.getElementById("export-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const picks = [...document.querySelectorAll("#result-rows input.pick:checked")];
      const body = { case_number: document.getElementById("case-number").value,
        clip_ids: picks.filter((p) => p.dataset.clipId).map((p) => p.dataset.clipId),
        event_ids: picks.filter((p) => p.dataset.eventId).map((p) => p.dataset.eventId) };
      const out = document.getElementById("export-result");
      const link = document.getElementById("export-link");
      link.hidden = true;
      out.textContent = "Building the bundle…";
      try {
        const r = await api("POST", "/api/exports", body);
        out.textContent = "Export ready: " + r.clips + " clip(s), " + (r.size / 1e6).toFixed(1) + " MB, sha256 " + r.sha256;
        link.href = r.download_url; link.textContent = "Download " + r.file_name; link.hidden = false;
        link.setAttribute("download", r.file_name);
        loadExports().catch(() => {});
      } catch (e) { out.textContent = e.message; }
    });
    head();
    run(null).catch((e) => toast(e.message));
    loadExports().catch((e) => toast(e.message));
  });
})();
