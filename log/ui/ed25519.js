// Ed25519 signature verification (RFC 8032, section 5.1.7) and the SHA-512
// it needs (FIPS 180-4), in plain JavaScript with BigInt, written for the
// explorer. The page uses it where the browser offers no Ed25519 in
// WebCrypto (older browsers, or a page not served from HTTPS or
// localhost); the self-test (selftest.html) cross-checks it with WebCrypto.
// Verification only: nothing here is secret.
"use strict";

// ---------- SHA-512 ----------

const M64 = (1n << 64n) - 1n;

// iroot returns floor(n^(1/k)) for a BigInt n (Newton's method).
function iroot(n, k) {
  let x = 1n << BigInt(Math.ceil(n.toString(2).length / Number(k)) + 1);
  for (;;) {
    const y = ((k - 1n) * x + n / x ** (k - 1n)) / k;
    if (y >= x) return x;
    x = y;
  }
}

function primes(count) {
  const out = [];
  for (let n = 2; out.length < count; n++) if (out.every((p) => n % p !== 0)) out.push(n);
  return out;
}

// FIPS 180-4 defines the constants as the first 64 bits of the fractional
// parts of the square roots (initial hash) and cube roots (round
// constants) of the first primes; computing them avoids typing 88 of them.
const P80 = primes(80);
const H512 = P80.slice(0, 8).map((p) => iroot(BigInt(p) << 128n, 2n) & M64);
const K512 = P80.map((p) => iroot(BigInt(p) << 192n, 3n) & M64);

const rotr = (x, n) => ((x >> n) | (x << (64n - n))) & M64;

export function sha512(msg) {
  const len = msg.length;
  const padded = new Uint8Array(((len + 17 + 127) >> 7) << 7);
  padded.set(msg);
  padded[len] = 0x80;
  const dv = new DataView(padded.buffer);
  dv.setUint32(padded.length - 8, Math.floor((len * 8) / 0x100000000));
  dv.setUint32(padded.length - 4, (len * 8) >>> 0);
  const h = H512.slice();
  const w = new Array(80);
  for (let off = 0; off < padded.length; off += 128) {
    for (let i = 0; i < 16; i++) w[i] = dv.getBigUint64(off + 8 * i);
    for (let i = 16; i < 80; i++) {
      const s0 = rotr(w[i - 15], 1n) ^ rotr(w[i - 15], 8n) ^ (w[i - 15] >> 7n);
      const s1 = rotr(w[i - 2], 19n) ^ rotr(w[i - 2], 61n) ^ (w[i - 2] >> 6n);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M64;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 80; i++) {
      const S1 = rotr(e, 14n) ^ rotr(e, 18n) ^ rotr(e, 41n);
      const ch = (e & f) ^ (~e & M64 & g);
      const t1 = (hh + S1 + ch + K512[i] + w[i]) & M64;
      const S0 = rotr(a, 28n) ^ rotr(a, 34n) ^ rotr(a, 39n);
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) & M64;
      hh = g; g = f; f = e; e = (d + t1) & M64; d = c; c = b; b = a; a = (t1 + t2) & M64;
    }
    [a, b, c, d, e, f, g, hh].forEach((v, i) => { h[i] = (h[i] + v) & M64; });
  }
  const out = new Uint8Array(64);
  const ov = new DataView(out.buffer);
  h.forEach((v, i) => ov.setBigUint64(8 * i, v));
  return out;
}

// ---------- edwards25519 ----------

const P = (1n << 255n) - 19n;
const L = (1n << 252n) + 27742317777372353535851937790883648493n;
const mod = (a) => { const r = a % P; return r < 0n ? r + P : r; };
function pow(b, e) {
  let r = 1n;
  b = mod(b);
  for (; e > 0n; e >>= 1n) { if (e & 1n) r = mod(r * b); b = mod(b * b); }
  return r;
}
const inv = (a) => pow(a, P - 2n);
const D = mod(-121665n * inv(121666n));
const D2 = mod(2n * D);
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

function leInt(b) {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]);
  return n;
}

// decode returns the point of a 32-byte encoding in extended coordinates
// [X, Y, Z, T], or null (RFC 8032, 5.1.3).
function decode(b) {
  const y = leInt(b) & ((1n << 255n) - 1n);
  const sign = BigInt(b[31] >> 7);
  if (y >= P) return null;
  const u = mod(y * y - 1n), v = mod(D * y * y + 1n);
  let x = mod(u * pow(v, 3n) * pow(u * pow(v, 7n), (P - 5n) / 8n));
  const vx2 = mod(v * x * x);
  if (vx2 === mod(-u)) x = mod(x * SQRT_M1);
  else if (vx2 !== u) return null;
  if (x === 0n && sign === 1n) return null;
  if ((x & 1n) !== sign) x = P - x;
  return [x, y, 1n, mod(x * y)];
}

function encode([X, Y, Z]) {
  const zi = inv(Z), x = mod(X * zi), y = mod(Y * zi);
  const out = new Uint8Array(32);
  let n = y | ((x & 1n) << 255n);
  for (let i = 0; i < 32; i++) { out[i] = Number(n & 0xffn); n >>= 8n; }
  return out;
}

// add is the unified addition of extended coordinates for a = -1
// (Hisil-Wong-Carter-Dawson 2008), complete on edwards25519.
function add([X1, Y1, Z1, T1], [X2, Y2, Z2, T2]) {
  const A = mod((Y1 - X1) * (Y2 - X2)), B = mod((Y1 + X1) * (Y2 + X2));
  const C = mod(T1 * D2 * T2), Dd = mod(2n * Z1 * Z2);
  const E = B - A, F = Dd - C, G = Dd + C, H = B + A;
  return [mod(E * F), mod(G * H), mod(F * G), mod(E * H)];
}

function mul(s, Pt) {
  let R = [0n, 1n, 1n, 0n];
  for (let i = BigInt(s.toString(2).length) - 1n; i >= 0n; i--) {
    R = add(R, R);
    if ((s >> i) & 1n) R = add(R, Pt);
  }
  return R;
}

const BASE = decode(Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 0x58 : 0x66)));

// ed25519Verify reports whether sig is a valid Ed25519 signature of msg by
// the 32-byte public key pub: S < L, and the encoding of [S]B - [k]A
// equals R (the cofactorless check, as Go's crypto/ed25519 does).
export function ed25519Verify(pub, msg, sig) {
  if (pub.length !== 32 || sig.length !== 64) return false;
  const A = decode(pub);
  if (!A) return false;
  const S = leInt(sig.subarray(32));
  if (S >= L) return false;
  const k = leInt(sha512(concat3(sig.subarray(0, 32), pub, msg))) % L;
  const negA = [mod(-A[0]), A[1], A[2], mod(-A[3])];
  const R = add(mul(S, BASE), mul(k, negA));
  const enc = encode(R);
  let d = 0;
  for (let i = 0; i < 32; i++) d |= enc[i] ^ sig[i];
  return d === 0;
}

function concat3(a, b, c) {
  const out = new Uint8Array(a.length + b.length + c.length);
  out.set(a); out.set(b, a.length); out.set(c, a.length + b.length);
  return out;
}
