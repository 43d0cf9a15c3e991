// Vigil: shared helpers (no build step, no inline script: CSP forbids it).
"use strict";
const Vigil = (() => {
  const csrf = () => {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  };
  async function api(method, url, body) {
    const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(url, opts);
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("not logged in"); }
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (!r.ok) throw new Error((data && data.message) || ("HTTP " + r.status));
    return data;
  }
  // Builds an element; text only through textContent (no HTML injection).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c.nodeType ? c : document.createTextNode(String(c)));
    return e;
  }
  function fmtTime(t) {
    if (t === null || t === undefined || t === "") return "";
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    if (isNaN(d)) return String(t);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function fmtDuration(s) {
    if (s === null || s === undefined) return "";
    if (s < 90) return s + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " days";
  }
  function toast(msg) {
    const t = document.getElementById("toast");
    if (!t) return;
    t.textContent = msg; t.classList.add("show");
    clearTimeout(toast.timer); toast.timer = setTimeout(() => t.classList.remove("show"), 4000);
  }
  function clipBadge(status) {
    const map = { verified: ["ok", "clip verified"], failed: ["bad", "clip FAILED re-check"], pending: ["warn", "clip pending"], none: ["", "no clip"] };
    const [cls, text] = map[status] || ["", status];
    return el("span", { class: "badge " + cls, "data-clip-status": status, text });
  }
  async function refreshAlertCount() {
    const b = document.getElementById("alert-count");
    if (!b) return;
    try {
      const a = await api("GET", "/api/alerts");
      const n = a.alerts.length + a.conditions.length;
      b.textContent = String(n); b.hidden = n === 0;
    } catch (_) { /* shown on the alerts page */ }
  }
  document.addEventListener("DOMContentLoaded", () => {
    const lo = document.getElementById("logout");
    if (lo) lo.addEventListener("click", async () => {
      try { await api("POST", "/api/logout"); } finally { location.href = "/login"; }
    });
    refreshAlertCount();
  });
  return { api, el, fmtTime, fmtDuration, toast, clipBadge, refreshAlertCount, csrf };
})();
