// ML-DSA-44 signature verification (FIPS 204, pure ML-DSA with an empty
// context) for the browser, with the SHAKE128/SHAKE256 it needs (FIPS 202).
// Written for the explorer from the two standards; verification only, so
// nothing here is secret and constant time does not matter. The page's
// test (scripts/ui-test.sh) checks it against signatures made by Go's
// implementation (filippo.io/mldsa), itself cross-checked with circl.
"use strict";

// ---------- Keccak-f[1600] and SHAKE (FIPS 202) ----------

const RC = [
  [0x00000001, 0x00000000], [0x00008082, 0x00000000], [0x0000808a, 0x80000000], [0x80008000, 0x80000000],
  [0x0000808b, 0x00000000], [0x80000001, 0x00000000], [0x80008081, 0x80000000], [0x00008009, 0x80000000],
  [0x0000008a, 0x00000000], [0x00000088, 0x00000000], [0x80008009, 0x00000000], [0x8000000a, 0x00000000],
  [0x8000808b, 0x00000000], [0x0000008b, 0x80000000], [0x00008089, 0x80000000], [0x00008003, 0x80000000],
  [0x00008002, 0x80000000], [0x00000080, 0x80000000], [0x0000800a, 0x00000000], [0x8000000a, 0x80000000],
  [0x80008081, 0x80000000], [0x00008080, 0x80000000], [0x80000001, 0x00000000], [0x80008008, 0x80000000],
];
// Rotation offsets of lane x + 5y.
const ROT = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14];

// keccakF permutes s: 25 lanes, lane i as s[2i] (low 32 bits), s[2i+1].
function keccakF(s) {
  const C = new Uint32Array(10), B = new Uint32Array(50);
  for (let round = 0; round < 24; round++) {
    for (let x = 0; x < 5; x++) {
      C[2 * x] = s[2 * x] ^ s[2 * x + 10] ^ s[2 * x + 20] ^ s[2 * x + 30] ^ s[2 * x + 40];
      C[2 * x + 1] = s[2 * x + 1] ^ s[2 * x + 11] ^ s[2 * x + 21] ^ s[2 * x + 31] ^ s[2 * x + 41];
    }
    for (let x = 0; x < 5; x++) {
      const p = (x + 4) % 5, n = (x + 1) % 5;
      const lo = C[2 * p] ^ ((C[2 * n] << 1) | (C[2 * n + 1] >>> 31));
      const hi = C[2 * p + 1] ^ ((C[2 * n + 1] << 1) | (C[2 * n] >>> 31));
      for (let y = 0; y < 25; y += 5) { s[2 * (x + y)] ^= lo; s[2 * (x + y) + 1] ^= hi; }
    }
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 5; y++) {
        const i = x + 5 * y;
        let lo = s[2 * i], hi = s[2 * i + 1], r = ROT[i];
        if (r >= 32) { const t = lo; lo = hi; hi = t; r -= 32; }
        if (r > 0) { const t = (lo << r) | (hi >>> (32 - r)); hi = (hi << r) | (lo >>> (32 - r)); lo = t; }
        const j = y + 5 * ((2 * x + 3 * y) % 5);
        B[2 * j] = lo; B[2 * j + 1] = hi;
      }
    }
    for (let y = 0; y < 25; y += 5) {
      for (let x = 0; x < 5; x++) {
        const i = y + x, a = y + (x + 1) % 5, b = y + (x + 2) % 5;
        s[2 * i] = B[2 * i] ^ (~B[2 * a] & B[2 * b]);
        s[2 * i + 1] = B[2 * i + 1] ^ (~B[2 * a + 1] & B[2 * b + 1]);
      }
    }
    s[0] ^= RC[round][0]; s[1] ^= RC[round][1];
  }
}

// Shake is a SHAKE128 (rate 168) or SHAKE256 (rate 136) XOF: absorb all
// input at construction, then read any number of bytes.
class Shake {
  constructor(rate, ...inputs) {
    this.rate = rate;
    this.s = new Uint32Array(50);
    this.buf = new Uint8Array(rate);
    let n = 0;
    for (const input of inputs) n += input.length;
    const msg = new Uint8Array(n);
    let off = 0;
    for (const input of inputs) { msg.set(input, off); off += input.length; }
    const blocks = Math.floor(msg.length / rate);
    for (let b = 0; b < blocks; b++) this.absorb(msg.subarray(b * rate, (b + 1) * rate));
    const last = new Uint8Array(rate);
    last.set(msg.subarray(blocks * rate));
    last[msg.length - blocks * rate] ^= 0x1f; // SHAKE domain and first pad bit
    last[rate - 1] ^= 0x80;
    this.absorb(last);
    this.pos = rate; // nothing squeezed yet
  }
  absorb(block) {
    for (let i = 0; i < this.rate; i++) this.s[i >> 2] ^= block[i] << (8 * (i & 3));
    keccakF(this.s);
  }
  read(n) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if (this.pos === this.rate) {
        if (this.squeezed) keccakF(this.s);
        this.squeezed = true;
        for (let j = 0; j < this.rate; j++) this.buf[j] = (this.s[j >> 2] >>> (8 * (j & 3))) & 0xff;
        this.pos = 0;
      }
      out[i] = this.buf[this.pos++];
    }
    return out;
  }
}

export const shake128 = (n, ...inputs) => new Shake(168, ...inputs).read(n);
export const shake256 = (n, ...inputs) => new Shake(136, ...inputs).read(n);

// ---------- ML-DSA-44 (FIPS 204) ----------

const Q = 8380417, D = 13, TAU = 39, GAMMA1 = 1 << 17, GAMMA2 = (Q - 1) / 88;
const K = 4, L = 4, BETA = 78, OMEGA = 80, CTILDE = 32;
const PK_SIZE = 32 + K * 320, SIG_SIZE = CTILDE + L * 576 + OMEGA + K;

const mod = (a) => { const r = a % Q; return r < 0 ? r + Q : r; };
// Products of two values below Q are below 2^46: exact in a double.
const mulmod = (a, b) => (a * b) % Q;

function powmod(b, e) {
  let r = 1;
  for (; e > 0; e >>= 1) { if (e & 1) r = mulmod(r, b); b = mulmod(b, b); }
  return r;
}
const brv8 = (k) => { let r = 0; for (let i = 0; i < 8; i++) r |= ((k >> i) & 1) << (7 - i); return r; };
// zetas[k] = 1753^brv8(k) mod q (FIPS 204, Appendix B).
const ZETAS = Array.from({ length: 256 }, (_, k) => powmod(1753, brv8(k)));

function ntt(w) { // Algorithm 41
  let m = 0;
  for (let len = 128; len >= 1; len >>= 1) {
    for (let start = 0; start < 256; start += 2 * len) {
      const z = ZETAS[++m];
      for (let j = start; j < start + len; j++) {
        const t = mulmod(z, w[j + len]);
        w[j + len] = mod(w[j] - t);
        w[j] = mod(w[j] + t);
      }
    }
  }
  return w;
}

function invNTT(w) { // Algorithm 42
  let m = 256;
  for (let len = 1; len < 256; len <<= 1) {
    for (let start = 0; start < 256; start += 2 * len) {
      const z = Q - ZETAS[--m];
      for (let j = start; j < start + len; j++) {
        const t = w[j];
        w[j] = mod(t + w[j + len]);
        w[j + len] = mulmod(z, mod(t - w[j + len]));
      }
    }
  }
  for (let j = 0; j < 256; j++) w[j] = mulmod(8347681, w[j]); // 256^-1 mod q
  return w;
}

// unpack reads 256 coefficients of bits bits each, little-endian bit order
// (SimpleBitUnpack).
function unpack(b, off, bits) {
  const out = new Array(256);
  let acc = 0, n = 0, p = off;
  for (let i = 0; i < 256; i++) {
    while (n < bits) { acc += b[p++] * 2 ** n; n += 8; }
    out[i] = acc % 2 ** bits;
    acc = Math.floor(acc / 2 ** bits);
    n -= bits;
  }
  return out;
}

function rejNTTPoly(seed) { // Algorithm 30
  const x = new Shake(168, seed);
  const a = new Array(256);
  for (let j = 0; j < 256;) {
    const s = x.read(3);
    const z = s[0] | (s[1] << 8) | ((s[2] & 0x7f) << 16);
    if (z < Q) a[j++] = z;
  }
  return a;
}

function sampleInBall(ctilde) { // Algorithm 29
  const x = new Shake(136, ctilde);
  const s = x.read(8);
  const c = new Array(256).fill(0);
  for (let i = 256 - TAU; i < 256; i++) {
    let j = x.read(1)[0];
    while (j > i) j = x.read(1)[0];
    const bit = i + TAU - 256;
    c[i] = c[j];
    c[j] = (s[bit >> 3] >> (bit & 7)) & 1 ? Q - 1 : 1;
  }
  return c;
}

function hintUnpack(y) { // Algorithm 21; null for a malformed hint
  const h = Array.from({ length: K }, () => new Array(256).fill(0));
  let index = 0;
  for (let i = 0; i < K; i++) {
    const end = y[OMEGA + i];
    if (end < index || end > OMEGA) return null;
    const first = index;
    while (index < end) {
      if (index > first && y[index - 1] >= y[index]) return null;
      h[i][y[index]] = 1;
      index++;
    }
  }
  for (let i = index; i < OMEGA; i++) if (y[i] !== 0) return null;
  return h;
}

function useHint(h, r) { // Algorithms 36 and 40, m = (q-1)/(2 gamma2) = 44
  let r0 = r % (2 * GAMMA2);
  if (r0 > GAMMA2) r0 -= 2 * GAMMA2;
  let r1;
  if (r - r0 === Q - 1) { r1 = 0; r0 -= 1; } else { r1 = (r - r0) / (2 * GAMMA2); }
  if (h === 0) return r1;
  return r0 > 0 ? (r1 + 1) % 44 : (r1 + 43) % 44;
}

// mldsa44Verify reports whether sig is a valid ML-DSA-44 signature of msg
// by the 1312-byte public key pk, with an empty context (ML-DSA.Verify,
// Algorithm 3, then ML-DSA.Verify_internal, Algorithm 8).
export function mldsa44Verify(pk, msg, sig) {
  if (pk.length !== PK_SIZE || sig.length !== SIG_SIZE) return false;
  const rho = pk.subarray(0, 32);
  const t1 = Array.from({ length: K }, (_, i) => unpack(pk, 32 + 320 * i, 10));
  const ctilde = sig.subarray(0, CTILDE);
  const z = [];
  for (let i = 0; i < L; i++) {
    const w = unpack(sig, CTILDE + 576 * i, 18);
    const zi = w.map((v) => GAMMA1 - v);
    // ||z||_inf < gamma1 - beta
    if (zi.some((v) => Math.abs(v) >= GAMMA1 - BETA)) return false;
    z.push(ntt(zi.map(mod)));
  }
  const h = hintUnpack(sig.subarray(CTILDE + 576 * L));
  if (!h) return false;
  const tr = shake256(64, pk);
  // M' = 0 || |ctx| = 0 || M (pure ML-DSA, empty context).
  const mu = shake256(64, tr, new Uint8Array([0, 0]), msg);
  const c = ntt(sampleInBall(ctilde));
  const w1 = new Uint8Array(K * 192);
  for (let i = 0; i < K; i++) {
    const acc = new Array(256).fill(0);
    for (let j = 0; j < L; j++) {
      const a = rejNTTPoly(new Uint8Array([...rho, j, i])); // ExpandA: rho || s || r
      for (let n = 0; n < 256; n++) acc[n] = mod(acc[n] + mulmod(a[n], z[j][n]));
    }
    const t = ntt(t1[i].map((v) => v * 2 ** D));
    for (let n = 0; n < 256; n++) acc[n] = mod(acc[n] - mulmod(c[n], t[n]));
    invNTT(acc);
    // w1Encode: 6 bits per coefficient, little-endian bit order.
    for (let n = 0; n < 256; n += 4) {
      const v = [0, 1, 2, 3].map((k) => useHint(h[i][n + k], acc[n + k]));
      const o = i * 192 + (n / 4) * 3;
      w1[o] = v[0] | (v[1] << 6);
      w1[o + 1] = (v[1] >> 2) | (v[2] << 4);
      w1[o + 2] = (v[2] >> 4) | (v[3] << 2);
    }
  }
  const c2 = shake256(CTILDE, mu, w1);
  let d = 0;
  for (let i = 0; i < CTILDE; i++) d |= c2[i] ^ ctilde[i];
  return d === 0;
}
