// Alerts: stored alerts to acknowledge, and cameras/agents down right now.
"use strict";
(() => {
  const { api, el, fmtTime, fmtDuration, toast } = Vigil;
  const LABELS = { missing_clip: "Missing clip", tamper: "TAMPER", rejected: "Rejected clip", outbox_drop: "Outbox drop", forgery: "FORGERY", camera_down: "Camera down", agent_offline: "Agent offline" };

  async function load() {
    const all = document.getElementById("show-all-alerts").checked;
    const r = await api("GET", "/api/alerts" + (all ? "?all=true" : ""));
    const cond = document.getElementById("conditions");
    cond.replaceChildren(...r.conditions.map((c) => el("li", { class: c.kind, "data-kind": c.kind },
      el("strong", { text: LABELS[c.kind] || c.kind }),
      el("span", { class: "grow", text: c.agent_id + (c.camera_id ? " / " + c.camera_id : "") + ": " + c.detail }),
      el("span", { class: "muted", text: c.since ? "since " + fmtTime(c.since) + " (" + fmtDuration(c.seconds) + ")" : "" }))));
    document.getElementById("conditions-empty").hidden = r.conditions.length > 0;
    const list = document.getElementById("alerts");
    list.replaceChildren(...r.alerts.map((a) => el("li", { class: a.kind, "data-alert-id": a.id, "data-kind": a.kind },
      el("strong", { text: LABELS[a.kind] || a.kind }),
      el("span", { class: "grow", text: a.agent_id + " / " + a.camera_id + ": " + a.detail }),
      el("time", { text: fmtTime(a.at) }),
      a.acked_by ? el("span", { class: "badge ok", text: "acknowledged by " + a.acked_by })
        : el("button", { type: "button", class: "alert-ack", "data-testid": "alert-ack-" + a.id, onclick: async () => {
            try { await api("POST", "/api/alerts/" + a.id + "/ack"); await load(); Vigil.refreshAlertCount(); } catch (e) { toast(e.message); }
          } }, "Acknowledge"))));
    document.getElementById("alerts-empty").hidden = r.alerts.length > 0;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const reload = () => load().catch((e) => toast(e.message));
    document.getElementById("show-all-alerts").addEventListener("change", reload);
    reload();
    setInterval(reload, 10000);
    const es = new EventSource("/api/live");
    es.addEventListener("alert", () => { reload(); Vigil.refreshAlertCount(); });
    es.addEventListener("cameras", reload);
  });
})();
