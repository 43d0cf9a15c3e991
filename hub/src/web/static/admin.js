// Admin pages: users, agents, settings, audit log.
"use strict";
(() => {
  const { api, el, fmtTime, toast } = Vigil;
  const ROLES = ["operator", "investigator", "admin"];

  async function users() {
    const r = await api("GET", "/api/users");
    document.getElementById("user-rows").replaceChildren(...r.users.map((u) => {
      const boxes = ROLES.map((role) => el("label", {}, el("input", { type: "checkbox", value: role, checked: u.roles.includes(role), "aria-label": role + " for " + u.username }), " " + role));
      const rolesCell = el("td", {}, ...boxes, el("button", { type: "button", class: "save-roles", onclick: async () => {
        const roles = boxes.map((b) => b.firstChild).filter((c) => c.checked).map((c) => c.value);
        try { await api("POST", "/api/users/" + encodeURIComponent(u.username) + "/roles", { roles }); toast("Roles saved"); users(); } catch (e) { toast(e.message); }
      } }, "Save roles"));
      return el("tr", { "data-username": u.username },
        el("th", { scope: "row", text: u.username }), rolesCell,
        el("td", {}, el("span", { class: "badge " + (u.disabled ? "bad" : "ok"), text: u.disabled ? "disabled" : "active" })),
        el("td", {},
          el("button", { type: "button", class: "toggle-disabled", onclick: async () => {
            try { await api("POST", "/api/users/" + encodeURIComponent(u.username) + "/disabled", { disabled: !u.disabled }); users(); } catch (e) { toast(e.message); }
          } }, u.disabled ? "Enable" : "Disable"), " ",
          el("button", { type: "button", class: "reset-password", onclick: async () => {
            const pw = prompt("New password for " + u.username + " (at least 10 characters)");
            if (!pw) return;
            try { await api("POST", "/api/users/" + encodeURIComponent(u.username) + "/password", { password: pw }); toast("Password reset; their sessions ended"); } catch (e) { toast(e.message); }
          } }, "Reset password")));
    }));
  }

  async function agents() {
    const r = await api("GET", "/api/agents");
    document.getElementById("agent-rows").replaceChildren(...r.agents.map((a) => el("tr", { "data-agent-id": a.agent_id },
      el("th", { scope: "row", text: a.agent_id }),
      el("td", {}, el("details", {}, el("summary", { text: a.key_id.slice(0, 16) + "…" }), el("pre", { text: a.key_id + "\n" + a.public_key_pem }))),
      el("td", { text: fmtTime(a.enrolled_at) }),
      el("td", { text: a.last_contact ? fmtTime(a.last_contact) : "never" }),
      el("td", {}, a.revoked_at ? el("span", { class: "badge bad", text: "revoked " + fmtTime(a.revoked_at) })
        : el("span", { class: "badge " + (a.status && a.status.state === "online" ? "ok" : "warn"), text: a.status ? a.status.state : "no status" })),
      el("td", {}, a.revoked_at ? "" : el("button", { type: "button", class: "revoke", onclick: async () => {
        if (!confirm("Revoke " + a.agent_id + "? Its messages will be refused.")) return;
        try { await api("POST", "/api/agents/" + encodeURIComponent(a.agent_id) + "/revoke"); agents(); } catch (e) { toast(e.message); }
      } }, "Revoke")))));
  }

  async function settings() {
    const r = await api("GET", "/api/settings");
    document.getElementById("clip-days").value = r.retention.clip_days;
    document.getElementById("event-days").value = r.retention.event_days;
    document.getElementById("export-days").value = r.retention.export_days;
    document.getElementById("down-seconds").textContent = r.camera_down_alert_seconds;
  }

  let auditNext = null;
  async function audit(before) {
    const r = await api("GET", "/api/audit?limit=100" + (before ? "&before=" + before : ""));
    const body = document.getElementById("audit-rows");
    if (!before) body.replaceChildren();
    for (const e of r.entries) body.append(el("tr", { "data-seq": e.seq },
      el("td", { text: e.seq }), el("td", { text: e.at }), el("td", { text: e.actor }), el("td", { text: e.action }),
      el("td", { text: e.subject }), el("td", {}, el("code", { text: e.detail })), el("td", { class: "hash", text: e.hash.slice(0, 16) + "…" })));
    auditNext = r.next_before;
    document.getElementById("audit-more").hidden = !auditNext;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const fail = (e) => toast(e.message);
    if (document.getElementById("users")) {
      users().catch(fail);
      document.getElementById("user-form").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const roles = [...document.querySelectorAll('input[name="new-role"]:checked')].map((c) => c.value);
        try {
          await api("POST", "/api/users", { username: document.getElementById("new-username").value, password: document.getElementById("new-password").value, roles });
          ev.target.reset(); toast("User created"); users();
        } catch (e) { fail(e); }
      });
    }
    if (document.getElementById("agents")) {
      agents().catch(fail);
      document.getElementById("enroll-form").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const out = document.getElementById("enroll-result");
        try {
          const r = await api("POST", "/api/agents", { agent_id: document.getElementById("agent-id").value,
            public_key_pem: document.getElementById("agent-pem").value, replace_key: document.getElementById("agent-replace").checked });
          out.textContent = "Enrolled " + r.agent_id + "\nkey id " + r.key_id + "\nMQTT username " + r.mqtt_username +
            "\nMQTT password " + r.mqtt_password + "\n(shown once: put it in the agent's config now)";
          agents();
        } catch (e) { out.textContent = e.message; }
      });
    }
    if (document.getElementById("settings-form")) {
      settings().catch(fail);
      document.getElementById("settings-form").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const n = (id) => Number(document.getElementById(id).value);
        try {
          await api("POST", "/api/settings", { retention: { clip_days: n("clip-days"), event_days: n("event-days"), export_days: n("export-days") } });
          document.getElementById("settings-result").textContent = "Saved.";
        } catch (e) { document.getElementById("settings-result").textContent = e.message; }
      });
    }
    if (document.getElementById("audit")) {
      audit(null).catch(fail);
      document.getElementById("audit-more").addEventListener("click", () => audit(auditNext).catch(fail));
      document.getElementById("verify-audit").addEventListener("click", async () => {
        const out = document.getElementById("audit-result");
        try {
          const r = await api("GET", "/api/audit/verify");
          out.textContent = r.intact ? "Intact: " + r.entries + " entries, head " + (r.head || "none")
            : "BROKEN at entry " + r.broken_seq + ": " + r.problem;
          out.className = r.intact ? "" : "error";
          out.dataset.intact = String(r.intact);
        } catch (e) { fail(e); }
      });
    }
  });
})();
