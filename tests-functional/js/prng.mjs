// xorshift32: x ^= x << 13; x ^= x >>> 17; x ^= x << 5 (all mod 2^32); the state advances
// before each byte and byte[i] is its low byte. node/src/blocks/unixfs.rs's tests use the same.
export function xorshift32Bytes (seed, size) {
  if ((seed >>> 0) === 0) throw new Error('xorshift32 seed must be non-zero')
  const out = new Uint8Array(size)
  let x = seed >>> 0
  for (let i = 0; i < size; i++) {
    x = (x ^ (x << 13)) >>> 0
    x = (x ^ (x >>> 17)) >>> 0
    x = (x ^ (x << 5)) >>> 0
    out[i] = x & 0xff
  }
  return out
}
