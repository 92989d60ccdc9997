// Evident explorer: verification in the browser, trusting nothing the
// server says. Pure functions, no DOM. Implements, for the browser, the
// C2SP formats that package checkpoint implements in Go:
//   signed-note      https://c2sp.org/signed-note (notes, vkeys, key IDs)
//   tlog-checkpoint  https://c2sp.org/tlog-checkpoint
//   tlog-cosignature https://c2sp.org/tlog-cosignature (Ed25519 type 0x04,
//                    ML-DSA-44 type 0x06, see mldsa.js)
//   tlog-policy      https://c2sp.org/tlog-policy
//   tlog-proof       https://c2sp.org/tlog-proof
//   RFC 6962 / RFC 9162 inclusion proofs (SHA-256).
// SHA-256 is written here (so that hashing works outside secure contexts
// too), ML-DSA-44 in mldsa.js; Ed25519 verification uses WebCrypto, or
// ed25519.js where the browser offers none.
"use strict";

import { ed25519Verify as ed25519VerifyJS } from "./ed25519.js";
import { mldsa44Verify } from "./mldsa.js";

const enc = new TextEncoder();
export const utf8 = (s) => enc.encode(s);

// ---------- bytes ----------

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let i = 0;
  for (const p of parts) { out.set(p, i); i += p.length; }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export function toHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function fromHex(s) {
  if (!/^([0-9a-f]{2})*$/.test(s)) throw new Error("not lowercase hex");
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

export function toBase64(b) {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
  return btoa(s);
}

// fromBase64 decodes standard, padded base64 and refuses anything not in
// canonical form (as the Go parsers do).
export function fromBase64(s) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new Error("not canonical base64");
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  if (toBase64(out) !== s) throw new Error("not canonical base64");
  return out;
}

// ---------- SHA-256 (FIPS 180-4) ----------

const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export function sha256(msg) {
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const bitLen = msg.length * 8;
  const padded = new Uint8Array(((msg.length + 9 + 63) >> 6) << 6);
  padded.set(msg);
  padded[msg.length] = 0x80;
  const dv = new DataView(padded.buffer);
  dv.setUint32(padded.length - 8, Math.floor(bitLen / 0x100000000));
  dv.setUint32(padded.length - 4, bitLen >>> 0);
  const w = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15], b = w[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K256[i] + w[i]) >>> 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) ov.setUint32(4 * i, h[i]);
  return out;
}

// leafHash is RFC 6962's leaf hash: SHA-256(0x00 || entry).
export const leafHash = (entry) => sha256(concat(new Uint8Array([0]), entry));
const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));

// ---------- names, keys, notes ----------

// validName: a signed-note key name: non-empty, no Unicode spaces, no "+".
export function validName(s) {
  return s.length > 0 && !/[\s+\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u.test(s) && !/[\x00-\x1f\x7f]/.test(s);
}

export const ALG_ED25519 = 0x01, ALG_COSIG_V1 = 0x04, ALG_MLDSA44 = 0x06;
// cosigTime shows a cosignature's timestamp (seconds since 1970, as
// signed) as a UTC date, or "" when it has none; one beyond what a date
// can hold (a changed signature) is shown as the number it is.
export function cosigTime(t) {
  if (t === undefined || t === null) return "";
  const d = new Date(Number(t) * 1000);
  return Number.isNaN(d.getTime()) ? `${t} s (not a date)` : d.toISOString();
}
export const algName = (a) => ({ 1: "Ed25519", 4: "Ed25519", 6: "ML-DSA-44" })[a] || `type 0x${a.toString(16).padStart(2, "0")}`;

function keyID(name, typedKey) {
  const h = sha256(concat(utf8(name + "\n"), typedKey));
  return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
}

// parseVKey parses "<name>+<8 hex key ID>+<base64(type || key)>" and checks
// that the key ID matches (signed-note).
export function parseVKey(vkey) {
  vkey = vkey.trim();
  const i = vkey.indexOf("+"), j = vkey.indexOf("+", i + 1);
  if (i < 0 || j < 0) throw new Error("a verifier key is name+keyID+base64");
  const name = vkey.slice(0, i), id16 = vkey.slice(i + 1, j);
  if (!validName(name)) throw new Error(`key name ${JSON.stringify(name)} is not valid`);
  if (!/^[0-9a-f]{8}$/.test(id16)) throw new Error("key ID is not 8 lowercase hex digits");
  const raw = fromBase64(vkey.slice(j + 1));
  if (raw.length < 2) throw new Error("empty key");
  const alg = raw[0], key = raw.slice(1);
  const want = { [ALG_ED25519]: 32, [ALG_COSIG_V1]: 32, [ALG_MLDSA44]: 1312 }[alg];
  if (want === undefined) throw new Error(`unsupported signature type 0x${alg.toString(16)}`);
  if (key.length !== want) throw new Error(`${algName(alg)} key of ${key.length} bytes, want ${want}`);
  const id = parseInt(id16, 16) >>> 0;
  if (id !== keyID(name, raw)) throw new Error("key ID does not match the key");
  return { name, id, alg, key, vkey };
}

// parseNote splits a signed note into its body (ending in "\n") and
// signature lines "— <name> <base64(keyID || sig)>".
export function parseNote(text) {
  if (text.length > 65536) throw new Error("note larger than 64 KiB");
  if (/[\x00-\x09\x0b-\x1f\x7f]/.test(text)) throw new Error("note has control characters");
  const split = text.lastIndexOf("\n\n");
  if (split < 0) throw new Error("note has no blank line before its signatures");
  const body = text.slice(0, split + 1), rest = text.slice(split + 2);
  if (rest === "" || !rest.endsWith("\n")) throw new Error("note has no signature lines, or does not end in a newline");
  const sigs = rest.slice(0, -1).split("\n").map((line) => {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m || !validName(m[1])) throw new Error(`bad signature line ${JSON.stringify(line.slice(0, 60))}`);
    const raw = fromBase64(m[2]);
    if (raw.length < 5) throw new Error(`signature by ${m[1]} is too short`);
    const id = ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0;
    return { name: m[1], id, sig: raw.slice(4), line };
  });
  if (sigs.length > 100) throw new Error("more than 100 signatures");
  return { body, bodyBytes: utf8(body), sigs };
}

// parseCheckpoint parses a checkpoint body strictly (tlog-checkpoint).
export function parseCheckpoint(body) {
  if (!body.endsWith("\n")) throw new Error("checkpoint does not end in a newline");
  const lines = body.slice(0, -1).split("\n");
  if (lines.length < 3 || lines.some((l) => l === "")) throw new Error("checkpoint needs at least three non-empty lines");
  if (!validName(lines[0])) throw new Error("checkpoint origin is not a valid key name");
  const size = parseDecimal(lines[1], "tree size");
  const hash = fromBase64(lines[2]);
  if (hash.length !== 32) throw new Error("root hash is not 32 bytes");
  if (size === 0n && !equalBytes(hash, sha256(new Uint8Array()))) throw new Error("size 0 without the empty tree's root");
  return { origin: lines[0], size, hash, extensions: lines.slice(3) };
}

function parseDecimal(s, what) {
  if (!/^(0|[1-9][0-9]{0,18})$/.test(s) || BigInt(s) > 0x7fffffffffffffffn) throw new Error(`${what} ${JSON.stringify(s.slice(0, 30))} is not a decimal number without leading zeros`);
  return BigInt(s);
}

// ---------- signatures ----------

// ed25519WebCrypto verifies with the browser's WebCrypto, or returns null
// where it offers no Ed25519 (older browsers; pages not served from HTTPS
// or localhost have no crypto.subtle at all).
export async function ed25519WebCrypto(pub, msg, sig) {
  if (typeof crypto === "undefined" || !crypto.subtle) return null;
  let key;
  try {
    key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
  } catch {
    return null;
  }
  return crypto.subtle.verify({ name: "Ed25519" }, key, sig, msg);
}

// ed25519Verify uses WebCrypto where it can, else ed25519.js.
async function ed25519Verify(pub, msg, sig) {
  const r = await ed25519WebCrypto(pub, msg, sig);
  return r === null ? ed25519VerifyJS(pub, msg, sig) : r;
}

function u64(b, off) {
  let t = 0n;
  for (let i = 0; i < 8; i++) t = (t << 8n) | BigInt(b[off + i]);
  return t;
}

function be64(n) {
  const out = new Uint8Array(8);
  for (let i = 7; i >= 0; i--) { out[i] = Number(n & 0xffn); n >>= 8n; }
  return out;
}

// mldsaMessage is the cosigned_message of an ML-DSA-44 cosignature of a
// checkpoint (tlog-cosignature): label, name, timestamp, origin, 0, size,
// root hash.
export function mldsaMessage(name, t, cp) {
  const n = utf8(name), o = utf8(cp.origin);
  if (n.length < 1 || n.length > 255 || o.length < 1 || o.length > 255) throw new Error("name or origin longer than 255 bytes");
  return concat(utf8("subtree/v1\n\0"), new Uint8Array([n.length]), n, be64(t), new Uint8Array([o.length]), o, be64(0n), be64(cp.size), cp.hash);
}

// verifySignature checks one signature line sig of a note by key k (from
// parseVKey). It returns {ok, checked, time, detail}: checked is false when
// the browser cannot check that kind of signature.
export async function verifySignature(k, note, cp, sig) {
  if (sig.name !== k.name || sig.id !== k.id) return { ok: false, checked: true, detail: "not by this key" };
  if (k.alg === ALG_ED25519) {
    const ok = await ed25519Verify(k.key, note.bodyBytes, sig.sig);
    return { ok, checked: true, detail: ok ? "Ed25519 signature valid" : "Ed25519 signature INVALID" };
  }
  if (k.alg === ALG_COSIG_V1) {
    if (sig.sig.length !== 72) return { ok: false, checked: true, detail: "cosignature is not 72 bytes" };
    const t = u64(sig.sig, 0);
    if (t > 0x7fffffffffffffffn) return { ok: false, checked: true, detail: "timestamp over 2^63-1" };
    const msg = concat(utf8(`cosignature/v1\ntime ${t}\n`), note.bodyBytes);
    const ok = await ed25519Verify(k.key, msg, sig.sig.slice(8));
    return { ok, checked: true, time: t, detail: ok ? "Ed25519 cosignature/v1 valid" : "Ed25519 cosignature INVALID" };
  }
  if (k.alg === ALG_MLDSA44) {
    if (sig.sig.length !== 8 + 2420) return { ok: false, checked: true, detail: "ML-DSA-44 cosignature is not 2428 bytes" };
    const t = u64(sig.sig, 0);
    if (t > 0x7fffffffffffffffn) return { ok: false, checked: true, detail: "timestamp over 2^63-1" };
    const ok = mldsa44Verify(k.key, mldsaMessage(k.name, t, cp), sig.sig.slice(8));
    return { ok, checked: true, time: t, detail: ok ? "ML-DSA-44 cosignature valid" : "ML-DSA-44 cosignature INVALID" };
  }
  return { ok: false, checked: false, detail: `unsupported ${algName(k.alg)}` };
}

// ---------- policy (tlog-policy) ----------

export function parsePolicy(text) {
  const p = { logs: [], witnesses: [], nodes: [], byName: new Map(), quorum: -1, text };
  let haveQuorum = false;
  const used = new Set(), keys = new Set();
  text.split("\n").forEach((line, i) => {
    const where = `policy line ${i + 1}`;
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(line)) throw new Error(`${where}: control character`);
    const f = line.split(/[ \t]+/).filter((x) => x !== "");
    if (f.length === 0 || f[0].startsWith("#")) return;
    const fail = (m) => { throw new Error(`${where}: ${m}`); };
    const newName = (n) => {
      if (n === "none") fail('the name "none" is reserved');
      if (p.byName.has(n)) fail(`name ${n} is already defined`);
    };
    const uniqueKey = (k) => {
      const s = toHex(k.key);
      if (keys.has(s)) fail("the same public key twice");
      keys.add(s);
    };
    switch (f[0]) {
      case "log": {
        if (f.length < 2 || f.length > 3) fail('want "log <vkey> [<url>]"');
        const k = parseVKey(f[1]);
        if (k.alg !== ALG_ED25519) fail("a log key must be an Ed25519 note key (type 0x01)");
        uniqueKey(k);
        p.logs.push({ key: k, url: f[2] || "" });
        break;
      }
      case "witness": {
        if (f.length < 3 || f.length > 4) fail('want "witness <name> <vkey> [<url>]"');
        newName(f[1]);
        let k;
        try { k = parseVKey(f[2]); } catch (e) { fail(`witness ${f[1]}: ${e.message}`); }
        if (k.alg !== ALG_COSIG_V1 && k.alg !== ALG_MLDSA44) fail(`witness ${f[1]}: not a cosignature key (type 0x04 or 0x06)`);
        uniqueKey(k);
        if (p.witnesses.some((w) => w.key.name === k.name && w.key.id === k.id)) fail(`witness ${f[1]} has the key name and ID of another`);
        p.byName.set(f[1], p.nodes.length);
        p.nodes.push({ name: f[1], witness: p.witnesses.length });
        p.witnesses.push({ name: f[1], key: k, url: f[3] || "" });
        break;
      }
      case "group": {
        if (f.length < 4) fail('want "group <name> <k|any|all> <member>..."');
        const [, name, kind, ...members] = f;
        newName(name);
        const idx = members.map((m) => {
          if (!p.byName.has(m)) fail(`group ${name}: member ${m} is not defined on an earlier line`);
          const n = p.byName.get(m);
          if (used.has(n)) fail(`group ${name}: ${m} is already a member of a group`);
          used.add(n);
          return n;
        });
        let k;
        if (kind === "any") k = 1;
        else if (kind === "all") k = members.length;
        else if (/^[1-9][0-9]*$/.test(kind) && Number(kind) <= members.length) k = Number(kind);
        else fail(`group ${name}: threshold ${kind} is not any, all or 1..${members.length}`);
        p.byName.set(name, p.nodes.length);
        p.nodes.push({ name, witness: -1, k, members: idx });
        break;
      }
      case "quorum":
        if (haveQuorum) fail("second quorum line");
        haveQuorum = true;
        if (f.length !== 2) fail('want "quorum <name>"');
        if (f[1] === "none") { p.quorum = -1; break; }
        if (!p.byName.has(f[1])) fail(`quorum ${f[1]} is not defined on an earlier line`);
        p.quorum = p.byName.get(f[1]);
        break;
      default:
        fail(`unknown keyword ${f[0].slice(0, 30)}`);
    }
  });
  if (!haveQuorum) throw new Error("policy has no quorum line");
  return p;
}

// satisfied reports whether cosignatures by the named witnesses meet the
// policy's quorum.
export function satisfied(p, names) {
  if (p.quorum < 0) return true;
  const ok = [];
  p.nodes.forEach((n, i) => {
    ok[i] = n.witness >= 0 ? names.has(n.name) : n.members.filter((m) => ok[m]).length >= n.k;
  });
  return ok[p.quorum];
}

// describeQuorum says what the quorum needs, in words.
export function describeQuorum(p) {
  if (p.quorum < 0) return "none (no cosignature required)";
  const say = (i) => {
    const n = p.nodes[i];
    if (n.witness >= 0) return n.name;
    const all = n.k === n.members.length;
    return `${n.name}: ${all ? "all" : n.k === 1 ? "any" : n.k} of (${n.members.map(say).join(", ")})`;
  };
  return say(p.quorum);
}

// ---------- checkpoints ----------

// checkCheckpoint verifies a signed checkpoint with the log key and,
// optionally, a policy. It returns the parsed checkpoint, the log
// signature's result and one row per cosignature, and the quorum verdict:
// {status: "ok"|"bad"|"warn", detail}.
export async function checkCheckpoint(noteText, logKey, policy) {
  const note = parseNote(noteText);
  const cp = parseCheckpoint(note.body);
  const out = { note, cp, log: null, cosigs: [], quorum: null };
  if (logKey.name !== cp.origin) {
    out.log = { ok: false, detail: `log key is named ${logKey.name}, the checkpoint's origin is ${cp.origin}` };
  } else {
    const s = note.sigs.find((s) => s.name === logKey.name && s.id === logKey.id);
    out.log = s ? await verifySignature(logKey, note, cp, s) : { ok: false, detail: "no signature by the log key" };
  }
  if (!policy) {
    for (const s of note.sigs) {
      if (s.name === logKey.name && s.id === logKey.id) continue;
      out.cosigs.push({ witness: null, name: s.name, id: s.id, time: s.sig.length >= 8 ? u64(s.sig, 0) : null, ok: false, checked: false, detail: "not checked: no witness policy" });
    }
    out.quorum = { status: "warn", detail: "no witness policy: cosignatures not checked" };
    return out;
  }
  const seen = new Set();
  for (const s of note.sigs) {
    if (s.name === logKey.name && s.id === logKey.id) continue;
    const w = policy.witnesses.find((w) => w.key.name === s.name && w.key.id === s.id);
    if (!w) {
      out.cosigs.push({ witness: null, name: s.name, id: s.id, ok: false, checked: false, detail: "ignored: not a witness of the policy" });
      continue;
    }
    if (seen.has(w.name)) continue; // repeats after the first are ignored
    seen.add(w.name);
    let r;
    try { r = await verifySignature(w.key, note, cp, s); } catch (e) { r = { ok: false, checked: false, detail: `not checked: ${e.message}` }; }
    out.cosigs.push({ witness: w.name, alg: algName(w.key.alg), name: s.name, id: s.id, ...r });
  }
  const good = new Set(out.cosigs.filter((c) => c.ok).map((c) => c.witness));
  const unchecked = out.cosigs.filter((c) => c.witness && !c.checked);
  const forged = out.cosigs.filter((c) => c.witness && c.checked && !c.ok);
  if (forged.length) {
    out.quorum = { status: "bad", detail: `invalid cosignature by ${forged.map((c) => c.witness).join(", ")}: the note must be rejected` };
  } else if (satisfied(policy, good)) {
    out.quorum = { status: "ok", detail: `quorum met (${describeQuorum(policy)}) by ${[...good].join(", ") || "nobody needed"}` };
  } else if (unchecked.length && satisfied(policy, new Set([...good, ...unchecked.map((c) => c.witness)]))) {
    out.quorum = { status: "warn", detail: `quorum not established in the browser: it needs the cosignature of ${unchecked.map((c) => c.witness).join(", ")}, which this browser did not check (${unchecked[0].detail}); check it with "evident verify --policy"` };
  } else {
    out.quorum = { status: "bad", detail: `quorum NOT met (${describeQuorum(policy)}); valid cosignatures: ${[...good].join(", ") || "none"}` };
  }
  return out;
}

// ---------- receipts and inclusion ----------

export function parseReceipt(text) {
  if (text.length > 65536) throw new Error("receipt larger than 64 KiB");
  let rest = text;
  const next = () => {
    const i = rest.indexOf("\n");
    if (i < 0) return null;
    const line = rest.slice(0, i);
    rest = rest.slice(i + 1);
    return line;
  };
  if (next() !== "c2sp.org/tlog-proof@v1") throw new Error('a receipt starts with "c2sp.org/tlog-proof@v1"');
  let line = next();
  let extra = null;
  if (line !== null && line.startsWith("extra ")) { extra = fromBase64(line.slice(6)); line = next(); }
  if (line === null || !line.startsWith("index ")) throw new Error("receipt has no index line");
  const index = parseDecimal(line.slice(6), "index");
  const proof = [];
  for (;;) {
    line = next();
    if (line === null) throw new Error("receipt has no blank line before the checkpoint");
    if (line === "") break;
    if (proof.length === 63) throw new Error("more than 63 proof hashes");
    const h = fromBase64(line);
    if (h.length !== 32) throw new Error(`proof hash ${proof.length} is not 32 bytes`);
    proof.push(h);
  }
  return { extra, index, proof, checkpoint: rest };
}

// verifyInclusion checks an RFC 9162 (2.1.3.2) inclusion proof.
export function verifyInclusion(index, size, leaf, proof, root) {
  if (index >= size) return false;
  let fn = index, sn = size - 1n, r = leaf;
  for (const p of proof) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n && equalBytes(r, root);
}

// verifyReceipt checks a receipt step by step; each step is {name,
// status: "ok"|"bad"|"warn"|"skip", detail}. It never throws: a failure is
// a red step, and the steps after it that cannot run are skipped.
export async function verifyReceipt(text, entry, logKeyText, policyText) {
  const steps = [];
  const step = (name, status, detail) => { steps.push({ name, status, detail }); return status !== "bad"; };
  const verdict = () => {
    const bad = steps.some((s) => s.status === "bad"), warn = steps.some((s) => s.status === "warn");
    return { steps, status: bad ? "bad" : warn ? "warn" : "ok" };
  };
  let r, policy = null, logKey = null;
  try { r = parseReceipt(text); step("Receipt format (tlog-proof)", "ok", `index ${r.index}, ${r.proof.length} proof hashes`); } catch (e) { step("Receipt format (tlog-proof)", "bad", e.message); return verdict(); }
  if (policyText && policyText.trim()) {
    try { policy = parsePolicy(policyText); step("Witness policy", "ok", `${policy.witnesses.length} witnesses; quorum: ${describeQuorum(policy)}`); } catch (e) { step("Witness policy", "bad", e.message); return verdict(); }
  }
  try {
    if (logKeyText && logKeyText.trim()) logKey = parseVKey(logKeyText);
    else if (policy && policy.logs.length) {
      const origin = parseCheckpoint(parseNote(r.checkpoint).body).origin;
      const l = policy.logs.find((l) => l.key.name === origin);
      if (l) logKey = l.key;
    }
    if (!logKey) throw new Error("no log key: pin the log's verifier key (or a policy with a log line)");
    if (logKey.alg !== ALG_ED25519) throw new Error("the log key must be an Ed25519 note key");
    if (policy && policy.logs.length && !policy.logs.some((l) => l.key.vkey === logKey.vkey)) throw new Error("the log key is not one of the policy's logs");
    step("Log key", "ok", `${logKey.name} (key ID ${logKey.id.toString(16).padStart(8, "0")})`);
  } catch (e) { step("Log key", "bad", e.message); return verdict(); }
  let c;
  try { c = await checkCheckpoint(r.checkpoint, logKey, policy); } catch (e) { step("Checkpoint", "bad", e.message); return verdict(); }
  step("Checkpoint signed by the log (signed note, Ed25519)", c.log.ok ? "ok" : "bad", `${c.log.detail}; tree size ${c.cp.size}, origin ${c.cp.origin}`);
  for (const co of c.cosigs.filter((x) => x.witness)) {
    const when = cosigTime(co.time) ? `, at ${cosigTime(co.time)}` : "";
    step(`Cosignature by witness ${co.witness} (${co.alg})`, co.ok ? "ok" : co.checked ? "bad" : "warn", co.detail + when);
  }
  step("Witness quorum (tlog-policy)", c.quorum.status, c.quorum.detail);
  if (!c.log.ok) return verdict();
  if (entry) {
    const lh = leafHash(entry);
    const ok = verifyInclusion(r.index, c.cp.size, lh, r.proof, c.cp.hash);
    step("Entry included at its index (RFC 6962, SHA-256)", ok ? "ok" : "bad", ok ? `leaf hash ${toHex(lh)} is at index ${r.index} of ${c.cp.size} under root ${toBase64(c.cp.hash)}` : `the proof does not lead from leaf hash ${toHex(lh)} at index ${r.index} to the checkpoint's root`);
  } else {
    step("Entry included at its index (RFC 6962, SHA-256)", "warn", "not checked: give the entry (file or text) to check that this receipt is for it");
  }
  return verdict();
}
