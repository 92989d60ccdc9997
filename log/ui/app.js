// Evident explorer: the page's behaviour. Everything shown as verified is
// checked here (verify.js) with the log key and witness policy in the
// "Trust" inputs; what only the server reports (metrics, health, times of
// publication) is labelled as such.
"use strict";

import * as V from "./verify.js";

const $ = (id) => document.getElementById(id);
const PIN = "evident.pinned"; // localStorage: {logKey, policy}
let verified = null; // the latest checkpoint, verified: {size, hash}
let entryFile = null; // bytes of a chosen or dropped entry file

// ---------- small DOM helpers (no innerHTML with data) ----------

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
}

function badge(status, text) {
  return el("span", { class: `status ${status}` }, text);
}

const MARK = { ok: "✔ PASS", bad: "✘ FAIL", warn: "! NOT CHECKED", skip: "– SKIPPED" };

function setVerdict(node, status, text) {
  node.className = `verdict ${status}`;
  node.dataset.status = status;
  node.textContent = text;
}

async function fetchText(path) {
  const r = await fetch(path, { cache: "no-store" });
  return { ok: r.ok, status: r.status, text: await r.text() };
}

// ---------- trust ----------

function trust() {
  const out = { logKey: null, policy: null, error: null };
  try {
    out.logKey = V.parseVKey($("logkey").value);
    if (out.logKey.alg !== V.ALG_ED25519) throw new Error("a log key is an Ed25519 note key (type 0x01)");
  } catch (e) {
    out.error = `log key: ${e.message}`;
    out.logKey = null;
  }
  const text = $("policy").value;
  if (text.trim()) {
    try { out.policy = V.parsePolicy(text); } catch (e) { out.error = (out.error ? out.error + "; " : "") + e.message; }
  }
  return out;
}

function pinned() {
  try { return JSON.parse(localStorage.getItem(PIN) || "null"); } catch { return null; }
}

async function loadTrust() {
  const pin = pinned();
  let info = null;
  try { info = JSON.parse((await fetchText("../v1/info")).text); } catch { /* shown below */ }
  const status = $("trust-status");
  if (pin) {
    $("logkey").value = pin.logKey;
    $("policy").value = pin.policy || "";
    if (info && info.vkey !== pin.logKey) {
      status.replaceChildren(badge("bad", "WARNING"), " The server now presents another log key than the one you pinned: ", el("code", {}, info.vkey || "(none)"));
    } else {
      status.replaceChildren(badge("ok", "pinned"), " Using the key and policy you pinned in this browser.");
    }
    return;
  }
  await loadFromServer();
}

async function loadFromServer() {
  try {
    const info = JSON.parse((await fetchText("../v1/info")).text);
    $("logkey").value = info.vkey || "";
  } catch { $("logkey").value = ""; }
  const p = await fetchText("../v1/witness-policy").catch(() => ({ ok: false }));
  $("policy").value = p.ok ? p.text : "";
  $("trust-status").replaceChildren(badge("warn", "not pinned"), " This key and policy came from the server itself: a dishonest server could give you its own. Compare them with a copy you trust, then pin them.");
}

// ---------- latest checkpoint ----------

async function loadCheckpoint() {
  const t = trust();
  const v = $("cp-verdict");
  verified = null;
  $("cp-sigs").replaceChildren();
  let res;
  try {
    res = await fetchText("../checkpoint");
    if (!res.ok) throw new Error(`the server answered ${res.status}`);
  } catch (e) {
    setVerdict(v, "bad", `Cannot fetch the checkpoint: ${e.message}`);
    return;
  }
  $("cp-note").textContent = res.text;
  if (!t.logKey) {
    setVerdict(v, "bad", `Not verified: ${t.error}`);
    return;
  }
  let c;
  try {
    c = await V.checkCheckpoint(res.text, t.logKey, t.policy);
  } catch (e) {
    setVerdict(v, "bad", `The checkpoint is malformed: ${e.message}`);
    return;
  }
  $("cp-origin").textContent = c.cp.origin;
  $("cp-size").textContent = c.cp.size.toString();
  $("cp-root").textContent = V.toBase64(c.cp.hash);
  $("origin").textContent = `Log ${c.cp.origin}: everything below is checked in this browser with the log key and witness policy you pin.`;
  const rows = [el("tr", {}, el("td", {}, "log"), el("td", { class: "mono break" }, `${t.logKey.name} / ${t.logKey.id.toString(16).padStart(8, "0")}`), el("td", {}, "Ed25519"), el("td", {}, "-"), el("td", {}, badge(c.log.ok ? "ok" : "bad", c.log.ok ? "valid" : "INVALID"), " ", c.log.detail))];
  for (const co of c.cosigs) {
    const st = co.ok ? "ok" : co.checked && co.witness ? "bad" : "warn";
    const when = V.cosigTime(co.time) || "-";
    rows.push(el("tr", {}, el("td", {}, co.witness ? `witness ${co.witness}` : "unknown signer"), el("td", { class: "mono break" }, `${co.name} / ${co.id.toString(16).padStart(8, "0")}`), el("td", {}, co.alg || "-"), el("td", {}, when), el("td", {}, badge(st, co.ok ? "valid" : co.checked && co.witness ? "INVALID" : "not checked"), " ", co.detail)));
  }
  $("cp-sigs").replaceChildren(...rows);
  $("cp-quorum").replaceChildren(badge(c.quorum.status, c.quorum.status === "ok" ? "met" : c.quorum.status === "bad" ? "NOT MET" : "not established"), " ", c.quorum.detail);
  if (!c.log.ok) {
    setVerdict(v, "bad", `NOT VERIFIED: ${c.log.detail}`);
    return;
  }
  verified = { size: c.cp.size, hash: c.cp.hash };
  const q = c.quorum.status;
  setVerdict(v, q === "bad" ? "bad" : q, q === "ok" ? `Verified: size ${c.cp.size}, signed by the log, witness quorum met.` : q === "warn" ? `Signed by the log (size ${c.cp.size}); witness quorum not established in the browser.` : `Signed by the log (size ${c.cp.size}), but the witness quorum is NOT met.`);
}

// ---------- health and metrics ----------

function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const r = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!r) continue;
    const v = Number(r[3]);
    if (!Number.isFinite(v)) continue;
    const key = r[1];
    m.set(key, (m.get(key) || 0) + v);
    if (r[2] && /code="5\d\d"/.test(r[2]) && key === "evident_http_requests_total") m.set("http_5xx", (m.get("http_5xx") || 0) + v);
  }
  return m;
}

async function loadHealth() {
  const tiles = [];
  const tile = (k, v, st) => tiles.push(el("div", { class: "tile" }, el("div", { class: "v" }, st ? badge(st, v) : v), el("div", { class: "k" }, k)));
  try {
    const h = await fetchText("../healthz");
    tile("health (/healthz)", h.ok ? "ok" : `failing (${h.status})`, h.ok ? "ok" : "bad");
    $("health-text").textContent = h.text;
  } catch (e) { tile("health", "unreachable", "bad"); }
  tile("verified tree size", verified ? verified.size.toString() : "not verified", verified ? null : "bad");
  try {
    const m = parseMetrics((await fetchText("../metrics")).text);
    const mean = (name) => (m.get(`${name}_count`) ? (m.get(`${name}_sum`) / m.get(`${name}_count`)).toFixed(3) + " s" : "-");
    tile("entries added (server's count)", String(m.get("evident_entries_added_total") ?? "-"));
    tile("waiting for a checkpoint", String(m.get("evident_backlog_entries") ?? "-"));
    tile("mean time to receipt", mean("evident_add_entry_seconds"));
    tile("mean publishing round", mean("evident_publish_seconds"));
    tile("failed publishing rounds", String(m.get("evident_publish_errors_total") ?? "-"), m.get("evident_publish_errors_total") ? "warn" : null);
    tile("publisher stalled", m.get("evident_publisher_stalled") ? "STALLED" : "no", m.get("evident_publisher_stalled") ? "bad" : "ok");
    tile("HTTP 5xx answers", String(m.get("http_5xx") || 0));
  } catch (e) { tile("metrics", "unavailable", "warn"); }
  $("tiles").replaceChildren(...tiles);
}

// ---------- chart ----------

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function loadHistory() {
  const t = trust();
  let h;
  try {
    h = JSON.parse((await fetchText("../v1/ui/history")).text);
  } catch (e) {
    $("chart-note").textContent = `No history: ${e.message}`;
    return;
  }
  const pts = [];
  let good = 0;
  const rows = [];
  for (const p of h.checkpoints || []) {
    let ok = false;
    try {
      const c = await V.checkCheckpoint(p.note, t.logKey, null);
      ok = c.log.ok && c.cp.size === BigInt(p.size);
    } catch { ok = false; }
    if (ok) good++;
    const at = Date.parse(p.published_at);
    const lat = p.signed_at ? (at - Date.parse(p.signed_at)) / 1000 : null;
    pts.push({ at, size: p.size, lat, ok });
    rows.push(el("tr", {}, el("td", {}, p.published_at), el("td", { class: "num" }, String(p.size)), el("td", { class: "num" }, lat === null ? "-" : lat.toFixed(3)), el("td", {}, badge(ok ? "ok" : "bad", ok ? "valid" : "INVALID"))));
  }
  $("chart-table").replaceChildren(...rows);
  $("chart-note").textContent = `${pts.length} published checkpoints sampled over the tree's history; ${good} of ${pts.length} carry a valid log signature for their size (checked here). Publication times and the witnesses' round times (signed → published) are the server's report. Blue: tree size; pink: witness round, seconds.`;
  drawChart(pts);
}

function drawChart(pts) {
  const W = 900, H = 200, L = 60, R = 50, T = 10, B = 24;
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", "aria-hidden": "true" });
  if (pts.length === 0) { $("chart").replaceChildren(root); return; }
  const t0 = pts[0].at, t1 = Math.max(pts[pts.length - 1].at, t0 + 1);
  const maxSize = Math.max(1, ...pts.map((p) => p.size));
  const lats = pts.filter((p) => p.lat !== null);
  const maxLat = Math.max(0.001, ...lats.map((p) => p.lat));
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v, max) => H - B - (v / max) * (H - T - B);
  root.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }), svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  root.append(svg("text", { x: 4, y: T + 10 }, String(maxSize)), svg("text", { x: 4, y: H - B }, "0"));
  root.append(svg("text", { x: L, y: H - 6 }, new Date(t0).toISOString().slice(0, 19)), svg("text", { x: W - R - 130, y: H - 6 }, new Date(t1).toISOString().slice(0, 19)));
  root.append(svg("polyline", { class: "grow", points: pts.map((p) => `${x(p.at).toFixed(1)},${y(p.size, maxSize).toFixed(1)}`).join(" ") }));
  if (lats.length) {
    root.append(svg("text", { x: W - R + 4, y: T + 10 }, `${maxLat.toFixed(2)}s`));
    root.append(svg("polyline", { class: "lat", points: lats.map((p) => `${x(p.at).toFixed(1)},${y(p.lat, maxLat).toFixed(1)}`).join(" ") }));
  }
  $("chart").replaceChildren(root);
}

// ---------- entry lookup ----------

let lookedUp = null;

function showEntry() {
  const pre = $("lookup-entry");
  if (!lookedUp) { pre.hidden = true; return; }
  const mode = document.querySelector('input[name="view"]:checked').value;
  let text;
  if (mode === "hex") {
    text = V.toHex(lookedUp).replace(/(.{64})/g, "$1\n");
  } else {
    text = new TextDecoder("utf-8", { fatal: false }).decode(lookedUp);
    if (mode === "json") {
      try { text = JSON.stringify(JSON.parse(text), null, 2); } catch { text = `(not JSON; shown as text)\n${text}`; }
    }
  }
  pre.textContent = text;
  pre.hidden = false;
  $("view-mode").hidden = false;
}

async function lookup(ev) {
  ev.preventDefault();
  const out = $("lookup-result");
  lookedUp = null;
  showEntry();
  const q = $("lookup").value.trim();
  const say = (st, msg) => out.replaceChildren(badge(st, st === "ok" ? "verified" : st === "bad" ? "FAILED" : "note"), " ", msg);
  if (!verified) return say("bad", "No verified checkpoint to check against (see above).");
  try {
    let index, proofRes;
    if (/^(0|[1-9][0-9]*)$/.test(q)) {
      index = BigInt(q);
      if (index >= verified.size) return say("bad", `index ${q} is beyond the verified tree size ${verified.size}`);
      proofRes = await fetch(`../v1/proof/inclusion?index=${q}&tree_size=${verified.size}`);
    } else if (/^[0-9a-fA-F]{64}$/.test(q)) {
      proofRes = await fetch(`../v1/proof/inclusion?leaf_hash=${q.toLowerCase()}&tree_size=${verified.size}`);
    } else {
      return say("bad", "give an index (a decimal number) or a leaf hash (64 hex digits)");
    }
    if (proofRes.status === 404) return say("bad", "not in the log's verified tree (the server answered 404)");
    if (!proofRes.ok) return say("bad", `the server answered ${proofRes.status}`);
    const proof = await proofRes.json();
    index = BigInt(proof.index);
    const er = await fetch(`../v1/entries/${index}`);
    if (!er.ok) return say("bad", `fetching entry ${index}: the server answered ${er.status}`);
    const entry = new Uint8Array(await er.arrayBuffer());
    const lh = V.leafHash(entry);
    if (q.length === 64 && V.toHex(lh) !== q.toLowerCase()) return say("bad", `the server sent an entry whose leaf hash is ${V.toHex(lh)}, not the one asked for`);
    const hashes = (proof.hashes || []).map(V.fromBase64);
    if (!V.verifyInclusion(index, verified.size, lh, hashes, verified.hash)) return say("bad", `entry ${index}: its inclusion proof does NOT verify against the verified checkpoint`);
    lookedUp = entry;
    say("ok", `entry ${index} (${entry.length} bytes, leaf hash ${V.toHex(lh)}) is in the verified tree of size ${verified.size}`);
    showEntry();
  } catch (e) {
    say("bad", e.message);
  }
}

// ---------- receipts ----------

async function readFile(file) {
  return new Uint8Array(await file.arrayBuffer());
}

function dropZone(zone, onBytes) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) onBytes(await readFile(e.dataTransfer.files[0]), e.dataTransfer.files[0].name);
  });
}

function setReceipt(bytes) { $("receipt").value = new TextDecoder().decode(bytes); }
function setEntryFile(bytes, name) {
  entryFile = bytes;
  $("entry").value = "";
  $("entry-file-note").textContent = `Entry: ${name} (${bytes.length} bytes, used as is). Typing in the box replaces it.`;
}

async function verifyReceipt() {
  const t = trust();
  const entry = entryFile || ($("entry").value ? V.utf8($("entry").value) : null);
  const res = await V.verifyReceipt($("receipt").value, entry, $("logkey").value, $("policy").value);
  $("steps").replaceChildren(...res.steps.map((s) => el("li", { class: s.status, "data-status": s.status }, el("span", { class: "mark" }, MARK[s.status]), el("strong", {}, s.name), ": ", s.detail)));
  const words = { ok: "VALID: every step passed.", bad: "INVALID: a step failed. Do not rely on this receipt.", warn: "NOT FULLY CHECKED: see the steps marked !" };
  setVerdict($("verdict"), res.status, words[res.status]);
  if (t.error && res.status === "ok") setVerdict($("verdict"), "warn", `Checked, but: ${t.error}`);
}

// fromFragment reads #receipt=<base64url>&entry=<base64url> (a link that
// carries a receipt to check; the fragment never reaches the server) and
// #lookup=<index or leaf hash>.
function fromFragment() {
  const f = new URLSearchParams(location.hash.slice(1));
  const dec = (s) => V.fromBase64(s.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(s.length / 4) * 4, "="));
  let any = false;
  if (f.get("lookup")) $("lookup").value = f.get("lookup");
  try {
    if (f.get("receipt")) { setReceipt(dec(f.get("receipt"))); any = true; }
    if (f.get("entry")) setEntryFile(dec(f.get("entry")), "from the link");
  } catch (e) {
    setVerdict($("verdict"), "bad", `The link's receipt is not base64url: ${e.message}`);
  }
  return any;
}

// ---------- wiring ----------

async function refresh() {
  await loadCheckpoint();
  await Promise.all([loadHealth(), loadHistory()]);
}

async function main() {
  $("pin").addEventListener("click", () => {
    const t = trust();
    if (!t.logKey) { $("trust-status").replaceChildren(badge("bad", "not pinned"), ` ${t.error}`); return; }
    localStorage.setItem(PIN, JSON.stringify({ logKey: $("logkey").value.trim(), policy: $("policy").value }));
    $("trust-status").replaceChildren(badge("ok", "pinned"), " Pinned in this browser.");
    refresh();
  });
  $("unpin").addEventListener("click", async () => { localStorage.removeItem(PIN); await loadFromServer(); refresh(); });
  $("fromserver").addEventListener("click", async () => { await loadFromServer(); refresh(); });
  $("refresh").addEventListener("click", refresh);
  $("lookup-form").addEventListener("submit", lookup);
  for (const r of document.querySelectorAll('input[name="view"]')) r.addEventListener("change", showEntry);
  $("verify").addEventListener("click", verifyReceipt);
  $("receipt-file").addEventListener("change", async (e) => { if (e.target.files.length) setReceipt(await readFile(e.target.files[0])); });
  $("entry-file").addEventListener("change", async (e) => { if (e.target.files.length) setEntryFile(await readFile(e.target.files[0]), e.target.files[0].name); });
  $("entry").addEventListener("input", () => { entryFile = null; $("entry-file-note").textContent = ""; });
  dropZone($("receipt-drop"), setReceipt);
  dropZone($("entry-drop"), setEntryFile);
  await loadTrust();
  const auto = fromFragment();
  await refresh();
  if (auto) await verifyReceipt();
  if ($("lookup").value) await lookup(new Event("submit"));
  document.body.dataset.ready = "true";
}

main().catch((e) => {
  setVerdict($("cp-verdict"), "bad", `The page failed: ${e.message}`);
  document.body.dataset.ready = "error";
});
