//! The support console: one self-contained HTML page (CSS and a little vanilla
//! JavaScript, no build step) served at `GET /console`. It asks for a support
//! token once (kept in the tab's sessionStorage, sent as a bearer header), polls
//! `GET /v1/admin/agents` every two seconds, and sends commands through the admin
//! API. Viewers see everything with the controls disabled.
//!
//! For automation (the headless-browser test) the URL fragment may carry
//! `token=…` and `click=ELEMENT_ID`: the page stores the token and, once the
//! element exists, clicks it exactly as a person would.

/// The console's HTML.
pub const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ledgerlink support console</title>
<style>
  :root {
    --bg: #f4f6f8; --card: #ffffff; --ink: #1d2733; --muted: #66768a; --line: #e2e7ee;
    --ok: #1f9d55; --warn: #d98a00; --bad: #d64545; --off: #9aa5b1; --accent: #2f6fde;
  }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif;
         background: var(--bg); color: var(--ink); }
  header { display: flex; align-items: center; gap: 16px; padding: 14px 28px; background: #16202c; color: #fff; }
  header h1 { font-size: 18px; margin: 0; font-weight: 600; letter-spacing: .2px; }
  header .who { margin-left: auto; font-size: 13px; color: #c6d0dc; }
  header button { background: transparent; color: #c6d0dc; border: 1px solid #3b4a5c; border-radius: 6px; padding: 4px 10px; cursor: pointer; }
  main { max-width: 1180px; margin: 24px auto; padding: 0 20px; }
  .summary { display: flex; gap: 12px; margin-bottom: 18px; color: var(--muted); font-size: 14px; }
  .summary b { color: var(--ink); }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; margin-bottom: 18px;
          box-shadow: 0 1px 2px rgba(16,24,40,.04); overflow: hidden; }
  .card > .head { display: flex; align-items: center; gap: 12px; padding: 14px 18px; border-bottom: 1px solid var(--line); }
  .head .name { font-weight: 600; font-size: 16px; }
  .head .meta { color: var(--muted); font-size: 13px; }
  .head .right { margin-left: auto; display: flex; gap: 8px; align-items: center; }
  .dot { width: 10px; height: 10px; border-radius: 50%; display: inline-block; background: var(--off); }
  .dot.on { background: var(--ok); box-shadow: 0 0 0 3px rgba(31,157,85,.15); }
  .pill { font-size: 12px; border-radius: 999px; padding: 2px 9px; background: #eef2f7; color: var(--muted); }
  .pill.ok { background: #e6f6ed; color: var(--ok); } .pill.bad { background: #fdecec; color: var(--bad); }
  .pill.warn { background: #fff4e0; color: var(--warn); }
  .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0; }
  section { padding: 14px 18px; border-bottom: 1px solid var(--line); }
  .grid section:nth-child(odd) { border-right: 1px solid var(--line); }
  section h3 { margin: 0 0 8px; font-size: 12px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); }
  table { width: 100%; border-collapse: collapse; font-size: 14px; }
  td, th { text-align: left; padding: 6px 4px; border-top: 1px solid var(--line); vertical-align: middle; }
  th { font-weight: 500; color: var(--muted); font-size: 12px; border-top: none; }
  .row { display: flex; align-items: center; gap: 10px; padding: 6px 0; }
  .row .sub { color: var(--muted); font-size: 12px; }
  .switch { position: relative; width: 40px; height: 22px; border-radius: 999px; border: none; cursor: pointer;
            background: var(--off); transition: background .15s; flex: none; }
  .switch::after { content: ""; position: absolute; top: 3px; left: 3px; width: 16px; height: 16px; border-radius: 50%;
                   background: #fff; transition: left .15s; }
  .switch.on { background: var(--ok); } .switch.on::after { left: 21px; }
  .switch.pending { opacity: .6; } .switch:disabled { cursor: not-allowed; opacity: .5; }
  button.act { background: var(--accent); color: #fff; border: none; border-radius: 6px; padding: 4px 10px; cursor: pointer; font-size: 13px; }
  button.act:disabled { background: var(--off); cursor: not-allowed; }
  .err { color: var(--bad); font-size: 12px; }
  .muted { color: var(--muted); }
  .empty { text-align: center; padding: 60px 20px; color: var(--muted); }
  #login { max-width: 420px; margin: 80px auto; background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 28px; }
  #login input { width: 100%; padding: 9px 11px; border: 1px solid var(--line); border-radius: 8px; font: inherit; margin: 10px 0 14px; }
  #toast { position: fixed; bottom: 20px; right: 20px; background: #16202c; color: #fff; padding: 10px 14px; border-radius: 8px;
           font-size: 14px; opacity: 0; transition: opacity .2s; pointer-events: none; }
  #toast.show { opacity: .95; }
  @media (max-width: 860px) { .grid { grid-template-columns: 1fr; } .grid section:nth-child(odd) { border-right: none; } }
</style>
</head>
<body>
<header><h1>Ledgerlink · support console</h1><span class="who" id="who"></span><button id="logout" hidden>Sign out</button></header>
<div id="login" hidden>
  <h2 style="margin-top:0">Sign in</h2>
  <p class="muted">Paste a support token (<code>lls_…</code>) from <code>ledgerlink-hub support-token create NAME --role viewer|support</code>. It stays in this browser tab only.</p>
  <input id="token" type="password" autocomplete="off" placeholder="lls_…">
  <button class="act" id="signin">Sign in</button> <span class="err" id="loginerr"></span>
</div>
<main id="main" hidden><div class="summary" id="summary"></div><div id="agents"></div></main>
<div id="toast"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const idOf = (...parts) => parts.map((p) => String(p).replace(/[^A-Za-z0-9_.-]/g, "_")).join("--");
let role = "viewer", pending = {}, clickTarget = null;

const params = new URLSearchParams(location.hash.slice(1));
if (params.get("token")) { sessionStorage.setItem("ledgerlink.token", params.get("token")); }
clickTarget = params.get("click");
if (params.has("token")) { history.replaceState(null, "", location.pathname + (clickTarget ? "#click=" + clickTarget : "")); }

function token() { return sessionStorage.getItem("ledgerlink.token"); }
function toast(text) { const t = $("toast"); t.textContent = text; t.classList.add("show"); setTimeout(() => t.classList.remove("show"), 2500); }

async function api(method, path, body) {
  const res = await fetch(path, { method, headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json" },
                                  body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) { const e = new Error((data.error && data.error.message) || res.statusText); e.status = res.status; throw e; }
  return data;
}

function ago(at, now) {
  if (!at) return "never";
  const s = Math.max(0, Math.round((Date.parse(now) - Date.parse(at)) / 1000));
  if (s < 60) return s + " s ago"; if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago"; return Math.round(s / 86400) + " d ago";
}

function outcomePill(o) {
  const cls = { uploaded: "ok", unchanged: "ok", spooled: "warn", invalid: "bad", failed: "bad" }[o] || "";
  return `<span class="pill ${cls}">${esc(o)}</span>`;
}

// What the customer lets support look at now (diagnostics, data), and until when.
function supportPill(a, now) {
  const grants = a.support_access || [];
  if (!grants.length) return ` <span class="pill" title="the customer has not granted support access">no support access</span>`;
  const scopes = [...new Set(grants.flatMap((g) => g.scopes))].join(" + ");
  const until = grants.map((g) => g.expires_at).sort().pop();
  return ` <span class="pill ok" title="granted by the customer; every look is logged">support access: ${esc(scopes)} until ${esc(new Date(Date.parse(until)).toLocaleString())}</span>`;
}

// The identity key the hub knows the agent by (decision 0029).
function keyPill(a) {
  const k = a.identity_key;
  return k ? ` <span class="pill" title="identity key known since ${esc(k.registered_at)}">key ${esc(k.fingerprint)}</span>`
           : ` <span class="pill warn" title="registered by the agent's first signed hello or upload">no identity key yet</span>`;
}

function render(data) {
  const agents = data.agents || [];
  const online = agents.filter((a) => a.online).length;
  $("summary").innerHTML = `<span><b>${agents.length}</b> agents</span><span>·</span><span><b>${online}</b> online</span>
    <span>·</span><span>updated ${new Date(Date.parse(data.now)).toLocaleTimeString()}</span>`;
  if (!agents.length) { $("agents").innerHTML = `<div class="card empty">No agent has connected yet. Agents with a <code>[control]</code> section connect on start.</div>`; return; }
  const canAct = role === "support";
  $("agents").innerHTML = agents.map((a) => {
    const st = a.status || {}, key = idOf(a.tenant, a.agent_id);
    const plugins = (st.plugins || []).map((p) => {
      // The switch shows what the hub wants; the text also what the agent reports, when they differ.
      const wanted = ((a.desired || {}).disabled_plugins || {})[p.id];
      const id = "toggle--" + idOf(a.tenant, a.agent_id, p.id), on = !wanted, wait = pending[id];
      const by = (d) => `by ${esc(d.by)} ${esc(ago(d.at, data.now))}${d.reason ? ": " + esc(d.reason) : ""}`;
      const when = a.online ? "as soon as the agent answers" : "when the agent connects";
      const why = (!p.version ? "not installed on the agent; " : "")
        + (wanted && p.enabled ? `switching off queued ${by(wanted)}; applied ${when}`
          : !wanted && p.disabled ? `switching on queued; applied ${when}`
          : p.disabled ? `disabled ${by(p.disabled)}` : "enabled");
      return `<div class="row"><button class="switch ${on ? "on" : ""} ${wait ? "pending" : ""}" id="${id}" role="switch" aria-checked="${on}"
                 data-tenant="${esc(a.tenant)}" data-agent="${esc(a.agent_id)}" data-plugin="${esc(p.id)}" data-on="${on}" ${canAct ? "" : "disabled"}
                 title="${canAct ? "switch the plugin " + (on ? "off" : "on") : "viewers cannot change anything"}"></button>
              <div><div><b>${esc(p.id)}</b> <span class="muted">${esc(p.version || "")}</span></div>
              <div class="sub" data-state="${on ? "enabled" : "disabled"}" id="state--${idOf(a.tenant, a.agent_id, p.id)}">${wait ? "waiting for the agent…" : why}</div></div></div>`;
    }).join("") || `<div class="muted">No status reported yet.</div>`;
    const sources = (st.sources || []).map((s) => `<tr><td><b>${esc(s.id)}</b><div class="sub">${esc(s.plugin)}</div></td>
        <td>${s.running ? '<span class="pill warn">running</span>' : s.enabled && s.configured && !(st.plugins || []).some((p) => p.id === s.plugin && !p.enabled) ? '<span class="pill ok">on</span>' : '<span class="pill bad">off</span>'}</td>
        <td class="sub">last ${esc(ago(s.last_run, data.now))}${s.last_outcome ? " · " + esc(s.last_outcome) : ""}<br>next ${esc(s.next_run ? new Date(Date.parse(s.next_run)).toLocaleString() : "–")}</td></tr>`).join("");
    const bySource = {};
    (a.companies || []).forEach((c) => { (bySource[c.source] = bySource[c.source] || []).push(c); });
    const syncOf = (src, co, y) => (a.syncs || []).find((s) => s.source === src && s.company === co && s.year === y);
    const companies = Object.keys(bySource).map((src) => `<div class="row"><b>${esc(src)}</b>
        ${canAct ? `<button class="act" data-save="${esc(src)}" data-tenant="${esc(a.tenant)}" data-agent="${esc(a.agent_id)}">Save selection</button>` : ""}</div>
      <table><tr><th></th><th>company</th><th>year</th><th>last sync</th><th></th></tr>${bySource[src].map((c) =>
        (c.company.fiscal_years.length ? c.company.fiscal_years : [null]).slice(-3).map((y, i) => {
          const s = y === null ? null : syncOf(src, c.company.id, y);
          return `<tr><td>${i === 0 ? `<input type="checkbox" data-company="${esc(c.company.id)}" data-source="${esc(src)}" data-agentkey="${key}" ${c.selected ? "checked" : ""} ${canAct ? "" : "disabled"} title="integrate this company">` : ""}</td>
            <td>${i === 0 ? `<b>${esc(c.company.id)}</b> ${esc(c.company.name)}${c.selected ? "" : ' <span class="pill warn">available</span>'}<div class="sub">${esc(c.company.organisation_number || "")}</div>` : ""}</td>
            <td>${y ?? "–"}</td>
            <td>${s ? outcomePill(s.outcome) + ` <span class="sub">${esc(ago(s.at, data.now))}</span>` + (s.last_error ? `<div class="err">${esc(s.last_error)}</div>` : "") : '<span class="muted">–</span>'}</td>
            <td>${y !== null && c.selected ? `<button class="act" data-sync="${esc(src)}" data-company="${esc(c.company.id)}" data-year="${y}" data-tenant="${esc(a.tenant)}" data-agent="${esc(a.agent_id)}" ${canAct && a.online ? "" : "disabled"}>Sync now</button>` : ""}</td></tr>`;
        }).join("")).join("")}</table>`).join("") || `<div class="muted">No company reported yet; the agent reports after its first sync.</div>`;
    const commands = (a.commands || []).slice(0, 6).map((c) => `<tr><td>${esc(c.command.type)}</td><td class="sub">${esc(c.command.issued_by)} · ${esc(ago(c.created_at, data.now))}</td>
        <td><span class="pill ${{ done: "ok", failed: "bad", expired: "bad", queued: "warn", sent: "warn" }[c.state] || ""}">${esc(c.state)}</span>${c.error ? `<div class="err">${esc(c.error)}</div>` : ""}</td></tr>`).join("");
    return `<div class="card" id="agent--${key}"><div class="head"><span class="dot ${a.online ? "on" : ""}"></span>
        <span class="name">${esc(a.tenant)} / ${esc(st.host || a.agent_id)}</span>
        <span class="meta">${esc(a.agent_id)} · v${esc(st.version || "?")} · ${esc(st.os || "")}</span>
        <span class="right"><span class="pill ${a.online ? "ok" : ""}">${a.online ? "online · " + esc(a.transport) : "offline · seen " + esc(ago(a.last_seen, data.now))}</span>
        <span class="pill">spool ${st.spool_entries ?? 0}</span>${supportPill(a, data.now)}${keyPill(a)}</span></div>
      <div class="grid"><section><h3>Plugins</h3>${plugins}</section><section><h3>Sources</h3><table>${sources}</table></section></div>
      <section><h3>Companies and last syncs</h3>${companies}</section>
      <section><h3>Recent commands</h3><table>${commands || '<tr><td class="muted">none</td></tr>'}</table></section></div>`;
  }).join("");
  if (clickTarget && $(clickTarget)) { const el = $(clickTarget); clickTarget = null; el.click(); }
}

async function send(tenant, agent, body) {
  return api("POST", `/v1/admin/agents/${encodeURIComponent(tenant)}/${encodeURIComponent(agent)}/commands`, body);
}

document.addEventListener("click", async (ev) => {
  const el = ev.target.closest("button"); if (!el) return;
  try {
    if (el.classList.contains("switch")) {
      const on = el.dataset.on === "true";
      pending[el.id] = true; el.classList.add("pending");
      await send(el.dataset.tenant, el.dataset.agent, { type: on ? "plugin.disable" : "plugin.enable", plugin: el.dataset.plugin, reason: "switched in the support console" });
      toast(`${el.dataset.plugin}: switching ${on ? "off" : "on"}…`);
      setTimeout(() => { delete pending[el.id]; }, 1500);
    } else if (el.dataset.sync) {
      await send(el.dataset.tenant, el.dataset.agent, { type: "sync", source: el.dataset.sync, company: el.dataset.company, year: Number(el.dataset.year) });
      toast(`sync of ${el.dataset.company} ${el.dataset.year} requested`);
    } else if (el.dataset.save) {
      const key = idOf(el.dataset.tenant, el.dataset.agent);
      const ids = [...document.querySelectorAll(`input[data-agentkey="${key}"][data-source="${CSS.escape(el.dataset.save)}"]`)].filter((c) => c.checked).map((c) => c.dataset.company);
      await api("PUT", `/v1/admin/agents/${encodeURIComponent(el.dataset.tenant)}/${encodeURIComponent(el.dataset.agent)}/sources/${encodeURIComponent(el.dataset.save)}/companies`, { companies: ids });
      toast(`selection saved: ${ids.join(", ") || "none"}`);
    }
  } catch (e) { toast(e.status === 403 ? "Your token is a viewer token: it cannot change anything." : "Failed: " + e.message); }
  refresh();
});

let timer = null, editing = false;
document.addEventListener("change", (ev) => { if (ev.target.matches("input[type=checkbox]")) editing = true; });
async function refresh() {
  clearTimeout(timer);
  try {
    if (!editing) render(await api("GET", "/v1/admin/agents"));
    $("main").hidden = false; $("login").hidden = true;
  } catch (e) {
    if (e.status === 401) { sessionStorage.removeItem("ledgerlink.token"); showLogin("That token is not valid (any more)."); return; }
    toast("Cannot reach the hub: " + e.message);
  }
  timer = setTimeout(refresh, 2000);
}
document.addEventListener("click", (ev) => { if (ev.target.matches("button[data-save]")) editing = false; }, true);

async function start() {
  if (!token()) { showLogin(""); return; }
  try {
    const me = await api("GET", "/v1/admin/whoami");
    role = me.role; $("who").textContent = `${me.name} · ${me.role}`; $("logout").hidden = false;
  } catch (e) { sessionStorage.removeItem("ledgerlink.token"); showLogin(e.status === 401 ? "That token is not valid." : e.message); return; }
  refresh();
}
function showLogin(message) { $("login").hidden = false; $("main").hidden = true; $("loginerr").textContent = message; }
$("signin").onclick = () => { sessionStorage.setItem("ledgerlink.token", $("token").value.trim()); start(); };
$("token").addEventListener("keydown", (e) => { if (e.key === "Enter") $("signin").click(); });
$("logout").onclick = () => { sessionStorage.removeItem("ledgerlink.token"); location.reload(); };
start();
</script>
</body>
</html>
"##;
