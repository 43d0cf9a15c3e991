// Camera wall: /api/cameras, refreshed on the SSE "cameras" hint and every 10 s.
"use strict";
(() => {
  const count = (n, word) => n + " " + word + (n === 1 ? "" : "s");
  const { api, el, fmtTime, fmtDuration, toast } = Vigil;

  function tile(agent, c) {
    const down = ["offline", "stopped"].includes(c.state) || (c.state === "retrying" && (c.seconds_in_state || 0) > 0);
    const cls = "tile " + (c.state === "retrying" ? "retrying" : down ? "down" : "");
    const stateText = c.state === "offline" ? "offline since " + fmtTime(c.since)
      : c.state === "retrying" ? "retrying: " + (c.reason || "unknown reason")
      : c.state;
    const badge = c.state === "streaming" ? "ok" : c.state === "retrying" || c.state === "starting" ? "warn" : c.state === "unknown" ? "" : "bad";
    const img = c.snapshot_url
      ? el("img", { src: c.snapshot_url + "?t=" + encodeURIComponent(c.snapshot_utc || ""), alt: "Latest snapshot of " + c.camera_id })
      : el("div", { class: "noimg", text: "no snapshot" });
    return el("section", { class: cls, "data-camera-id": c.camera_id, "data-agent-id": agent.agent_id, "data-state": c.state, "aria-label": "Camera " + c.camera_id },
      img,
      el("h3", {}, c.camera_id + " ", el("span", { class: "badge " + badge, text: stateText })),
      c.since && c.state !== "offline" ? el("div", { class: "muted", text: "since " + fmtTime(c.since) + " (" + fmtDuration(c.seconds_in_state) + ")" }) : null,
      c.last_event ? el("div", {}, "Last event: ", el("a", { href: "/events/" + encodeURIComponent(c.last_event.id), text: c.last_event.label + " " + fmtTime(c.last_event.start_utc) })) : el("div", { class: "muted", text: "No events" }));
  }

  async function load() {
    const r = await api("GET", "/api/cameras");
    const wall = document.getElementById("wall");
    wall.replaceChildren();
    let cams = 0, offline = 0;
    for (const a of r.agents) {
      cams += a.cameras.length;
      if (a.status === "offline") offline++;
      const head = el("h2", {}, "Agent " + a.agent_id,
        el("span", { class: "badge " + (a.status === "online" ? "ok" : a.status === "offline" ? "bad" : ""), text: a.status === "offline" ? "OFFLINE since " + fmtTime(a.since) : a.status }),
        a.revoked ? el("span", { class: "badge bad", text: "revoked" }) : null,
        el("span", { class: "muted", text: a.last_contact ? "last contact " + fmtTime(a.last_contact) : "" }));
      wall.append(el("section", { class: "agent " + (a.status === "offline" ? "offline" : ""), "data-agent-id": a.agent_id, "data-status": a.status },
        head, el("div", { class: "tiles" }, ...a.cameras.map((c) => tile(a, c)))));
    }
    document.getElementById("wall-summary").textContent =
      count(r.agents.length, "agent") + ", " + count(cams, "camera") + (offline ? ", " + offline + " agent(s) OFFLINE" : "");
  }

  document.addEventListener("DOMContentLoaded", () => {
    let pending = null;
    const reload = () => { clearTimeout(pending); pending = setTimeout(() => load().catch((e) => toast(e.message)), 150); };
    reload();
    setInterval(reload, 10000);
    const es = new EventSource("/api/live");
    es.addEventListener("cameras", reload);
    es.addEventListener("alert", () => Vigil.refreshAlertCount());
  });
})();
