"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  const err = document.getElementById("login-error");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    try {
      const r = await fetch("/api/login", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": Vigil.csrf() },
        body: JSON.stringify({ username: document.getElementById("username").value, password: document.getElementById("password").value }),
      });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(data.message || ("HTTP " + r.status));
      const next = new URLSearchParams(location.search).get("next");
      location.href = next && /^\/[A-Za-z0-9\/_.-]*$/.test(next) && !next.startsWith("//") && next !== "/login" ? next : data.home;
    } catch (e) {
      err.textContent = e.message; err.hidden = false;
      document.getElementById("password").focus();
    }
  });
});
