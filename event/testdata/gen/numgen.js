// Writes "hex-ieee,expected" lines: ECMAScript's own Number.prototype.toString
// (node) as the independent oracle for RFC 8785 number serialization.
const buf = new DataView(new ArrayBuffer(8));
const out = [];
function emit(hex) {
  buf.setBigUint64(0, BigInt('0x' + hex));
  const f = buf.getFloat64(0);
  if (!isFinite(f)) return;
  out.push(hex + ',' + (Object.is(f, -0) ? '0' : f.toString()));
}
const fixed = ['0000000000000000','8000000000000000','0000000000000001','8000000000000001',
 '7fefffffffffffff','ffefffffffffffff','4340000000000000','c340000000000000','4430000000000000',
 '44b52d02c7e14af5','44b52d02c7e14af6','44b52d02c7e14af7','444b1ae4d6e2ef4e','444b1ae4d6e2ef4f',
 '444b1ae4d6e2ef50','3eb0c6f7a0b5ed8c','3eb0c6f7a0b5ed8d','41b3de4355555553','41b3de4355555554',
 '41b3de4355555555','41b3de4355555556','41b3de4355555557','becbf647612f3696','43143ff3c1cb0959',
 '4340000000000001','4340000000000002','3ff0000000000000','bff0000000000000','3fb999999999999a'];
fixed.forEach(emit);
let seed = 0x9e3779b97f4a7c15n;
function next() { seed ^= seed << 13n; seed &= (1n<<64n)-1n; seed ^= seed >> 7n; seed ^= seed << 17n; seed &= (1n<<64n)-1n; return seed; }
for (let i = 0; i < 1500; i++) emit(next().toString(16).padStart(16, '0'));
for (let e = -330; e <= 310; e += 1) { buf.setFloat64(0, Number('1.2345678901234567e' + e)); emit(buf.getBigUint64(0).toString(16).padStart(16,'0')); }
for (let i = 0; i < 500; i++) { buf.setFloat64(0, Number((next() % 10000000n).toString()) / 1000); emit(buf.getBigUint64(0).toString(16).padStart(16,'0')); }
console.log(out.join('\n'));
