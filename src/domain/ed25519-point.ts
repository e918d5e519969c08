// Checks of Ed25519 point encodings (RFC 8032 §5.1.2–5.1.3) that Web Crypto does not make: Node
// (OpenSSL) imports any 32 bytes as a public key, and accepts the identity point as one, for which
// the signature R = identity, S = 0 verifies every message. Only the y coordinate and the sign bit
// of x are needed to tell the weak encodings apart, so no point is ever decompressed.

// The field prime 2^255 − 19 and the curve constant d = −121665/121666 (RFC 8032 §5.1).
const P = 2n ** 255n - 19n;
const D = 37095705934669439343138083508754565189542113879843219016388785533085940283555n;

// y of the two order-8 points with positive x and their negatives: together with y = 1 (the
// identity), y = p − 1 (order 2) and y = 0 (order 4), every point of small order (the curve's
// 8-torsion) has one of these y coordinates.
const Y_ORDER_8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022n;
const SMALL_ORDER_Y = new Set([0n, 1n, P - 1n, Y_ORDER_8, P - Y_ORDER_8]);

/**
 * What is wrong with 32 bytes as a point to trust (a public key, a signature's R), judged on the
 * encoding alone: "not canonical" when y ≥ p or when x = 0 comes with its sign bit set (the two
 * ways RFC 8032 §5.1.3 lets one point have a second encoding), "of small order" for the eight
 * points of the curve's 8-torsion, whose signatures need no secret. Null when neither holds;
 * whether the point is on the curve at all is {@link ed25519KeyProblem}'s further check.
 */
export function weakPointProblem(bytes: Uint8Array): "not canonical" | "of small order" | null {
  const { y, signed } = decode(bytes);
  if (y >= P) return "not canonical";
  // x = 0 only for y = ±1 (x² = (y² − 1) / (d·y² + 1)): "−0" is a second encoding of the same point.
  if (signed && (y === 1n || y === P - 1n)) return "not canonical";
  return SMALL_ORDER_Y.has(y) ? "of small order" : null;
}

/**
 * Why 32 bytes are no Ed25519 public key worth configuring, or null when they are one: a weak
 * encoding ({@link weakPointProblem}), or a y for which no x exists (a key that could never verify
 * anything, most likely a mangled paste). Two modular exponentiations: cheap once at start-up, and
 * not meant for every request.
 */
export function ed25519KeyProblem(
  bytes: Uint8Array,
): "not canonical" | "of small order" | "not a point of the curve" | null {
  const weak = weakPointProblem(bytes);
  if (weak) return weak;
  const { y } = decode(bytes);
  const y2 = (y * y) % P;
  const u = (y2 - 1n + P) % P;
  const v = (D * y2 + 1n) % P;
  // x² = u / v has a root exactly when u / v is a square: Euler's criterion, (u / v)^((p − 1) / 2) ∈ {0, 1}.
  const ratio = (u * power(v, P - 2n)) % P;
  const legendre = power(ratio, (P - 1n) / 2n);
  return legendre === 0n || legendre === 1n ? null : "not a point of the curve";
}

function decode(bytes: Uint8Array): { y: bigint; signed: boolean } {
  let y = 0n;
  // Little-endian, the top bit of the last byte being x's sign, not part of y.
  for (let i = bytes.length - 1; i >= 0; i--) {
    y = (y << 8n) | BigInt(i === bytes.length - 1 ? (bytes[i] as number) & 0x7f : (bytes[i] as number));
  }
  return { y, signed: ((bytes[bytes.length - 1] as number) & 0x80) !== 0 };
}

function power(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = base % P;
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
  }
  return result;
}
