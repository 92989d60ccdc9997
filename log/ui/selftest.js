// Self-test of the browser's verifier (/ui/selftest.html#receipt=<base64url>
// &entry=<base64url>[&n=N][&seed=S]): a property test run in the browser
// itself. The given receipt must verify against the log's key and policy;
// N copies of it, each changed at random (a character replaced, deleted or
// inserted, a line dropped, the text cut short), must each verify as
// INVALID and never throw; and every parser must refuse N random strings
// with a plain Error, never crash on them. It also cross-checks the page's
// own Ed25519 (ed25519.js) with the browser's WebCrypto.
"use strict";

import * as V from "./verify.js";
import { ed25519Verify } from "./ed25519.js";

const $ = (id) => document.getElementById(id);

// xorshift32: a small seeded generator, so a failure can be replayed.
function rng(seed) {
  let x = seed >>> 0 || 1;
  return (n) => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x % n; };
}

const ALPHABET = "ABCabc019+/=\n \u2014-.:#";

function mutate(s, r) {
  switch (r(5)) {
    case 0: { const i = r(s.length); let c; do { c = ALPHABET[r(ALPHABET.length)]; } while (c === s[i]); return s.slice(0, i) + c + s.slice(i + 1); }
    case 1: { const i = r(s.length); return s.slice(0, i) + s.slice(i + 1); }
    case 2: { const i = r(s.length + 1); return s.slice(0, i) + ALPHABET[r(ALPHABET.length)] + s.slice(i); }
    case 3: { const lines = s.split("\n"); lines.splice(r(lines.length), 1); return lines.join("\n"); }
    default: return s.slice(0, r(s.length));
  }
}

function junk(r) {
  let s = "";
  const n = r(200);
  for (let i = 0; i < n; i++) s += ALPHABET[r(ALPHABET.length)];
  return s;
}

async function main() {
  const f = new URLSearchParams(location.hash.slice(1));
  const dec = (s) => V.fromBase64(s.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(s.length / 4) * 4, "="));
  const receipt = new TextDecoder().decode(dec(f.get("receipt") || ""));
  const entry = f.get("entry") ? dec(f.get("entry")) : null;
  const n = Number(f.get("n") || 200), seed = Number(f.get("seed") || Date.now() % 1e9);
  const info = await (await fetch("../v1/info")).json();
  const pol = await fetch("../v1/witness-policy");
  const policy = pol.ok ? await pol.text() : "";
  const failures = [];
  const fail = (what) => failures.push(what);

  const good = await V.verifyReceipt(receipt, entry, info.vkey, policy);
  if (good.status !== "ok") fail(`the given receipt does not verify: ${good.steps.filter((s) => s.status !== "ok").map((s) => s.name + ": " + s.detail).join("; ")}`);

  const r = rng(seed);
  let changed = 0;
  for (let i = 0; i < n; i++) {
    const m = mutate(receipt, r);
    if (m === receipt) continue;
    changed++;
    try {
      const res = await V.verifyReceipt(m, entry, info.vkey, policy);
      if (res.status === "ok") fail(`a changed receipt verified (seed ${seed}, case ${i}):\n${m}`);
    } catch (e) {
      fail(`verifyReceipt threw on a changed receipt (seed ${seed}, case ${i}): ${e}`);
    }
  }
  // Every signature with a timestamp no date can hold (2^63-1 seconds; a
  // random change once made one): INVALID, and shown, not a crash.
  const huge = receipt.split("\n").map((l) => {
    if (!l.startsWith("\u2014 ")) return l;
    const sp = l.lastIndexOf(" ");
    const b = V.fromBase64(l.slice(sp + 1));
    if (b.length >= 12) b.set([0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 4);
    return l.slice(0, sp + 1) + V.toBase64(b);
  }).join("\n");
  try {
    const res = await V.verifyReceipt(huge, entry, info.vkey, policy);
    if (res.status === "ok") fail("a receipt whose signatures carry the timestamp 2^63-1 verified");
  } catch (e) {
    fail(`verifyReceipt threw on a cosignature timestamp no date can hold: ${e}`);
  }
  // Ed25519: the page's own implementation (ed25519.js) and WebCrypto
  // agree on the receipt's Ed25519 signatures and on changed copies.
  let compared = 0;
  const note = V.parseNote(receipt.slice(receipt.indexOf("\n\n") + 2));
  const keys = [V.parseVKey(info.vkey)];
  if (policy) keys.push(...V.parsePolicy(policy).witnesses.map((w) => w.key).filter((k) => k.alg === V.ALG_COSIG_V1));
  for (const k of keys) {
    const sl = note.sigs.find((s) => s.name === k.name && s.id === k.id);
    if (!sl) continue;
    const sig = k.alg === V.ALG_COSIG_V1 ? sl.sig.subarray(8) : sl.sig;
    const msg = k.alg === V.ALG_COSIG_V1 ? V.concat(V.utf8(`cosignature/v1\ntime ${new DataView(sl.sig.buffer, sl.sig.byteOffset).getBigUint64(0)}\n`), note.bodyBytes) : note.bodyBytes;
    for (let i = 0; i <= 40; i++) {
      const s2 = sig.slice(), m2 = msg.slice();
      if (i > 0 && i % 2) s2[r(64)] ^= 1 << r(8);
      else if (i > 0) m2[r(m2.length)] ^= 1 << r(8);
      const web = await V.ed25519WebCrypto(k.key, m2, s2);
      const js = ed25519Verify(k.key, m2, s2);
      if (web === null) { fail("this browser has no WebCrypto Ed25519 to compare with"); break; }
      if (web !== js || (i === 0 && !js)) fail(`Ed25519 of ${k.name}, case ${i}: WebCrypto says ${web}, ed25519.js says ${js}`);
      compared++;
    }
  }
  const parsers = { parseVKey: V.parseVKey, parsePolicy: V.parsePolicy, parseNote: V.parseNote, parseCheckpoint: V.parseCheckpoint, parseReceipt: V.parseReceipt };
  const seeds = [info.vkey, policy, receipt, receipt.slice(receipt.indexOf("\n\n") + 2)];
  for (let i = 0; i < n; i++) {
    const input = r(2) ? junk(r) : mutate(seeds[r(seeds.length)], r);
    for (const [name, p] of Object.entries(parsers)) {
      try { p(input); } catch (e) {
        if (!(e instanceof Error) || e.constructor !== Error) fail(`${name} crashed (${e && e.constructor && e.constructor.name}: ${e && e.message}) on ${JSON.stringify(input)}`);
      }
    }
  }
  $("failures").replaceChildren(...failures.slice(0, 20).map((t) => { const li = document.createElement("li"); li.className = "bad"; li.textContent = t; return li; }));
  const res = $("result");
  res.dataset.status = failures.length ? "bad" : "ok";
  res.className = `verdict ${res.dataset.status}`;
  res.textContent = failures.length
    ? `FAILED: ${failures.length} problem(s) (seed ${seed})`
    : `PASSED: the receipt verifies; ${changed} changed copies were all refused; ${n} junk inputs to ${Object.keys(parsers).length} parsers were refused cleanly; ed25519.js and WebCrypto agreed on ${compared} signatures (seed ${seed}).`;
}

main().catch((e) => {
  $("result").dataset.status = "bad";
  $("result").textContent = `The self-test failed to run: ${e}`;
});
