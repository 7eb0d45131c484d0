// IPNS records with Helia's own code (@helia/ipns 10.1.0), for archive-node's tests.
//
//   node --import ./shim.mjs ipns-check.mjs vectors [OUT.json]
//     Writes records made by createIPNSRecord (V2 only, as archive-node writes them) for fixed
//     secp256k1 keys, values, sequences and times, to compare byte for byte with ours
//     (default OUT: ../../node/tests/data/ipns_vectors.json).
//
//   node --import ./shim.mjs ipns-check.mjs validate PUBKEY_HEX RECORD_BASE64
//     Validates the record against the name of the 33-byte compressed secp256k1 key with
//     Helia's ipnsValidator and prints ONE JSON line {"valid", "value", "sequence",
//     "validity", "error"}; exits 0 either way (the caller asserts).

import { writeFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createIPNSRecord, ipnsValidator, IPNSEntry, multihashToIPNSRoutingKey } from '@helia/ipns'
import { privateKeyFromProtobuf, publicKeyFromProtobuf, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { decode as cborDecode } from '@ipld/dag-cbor'

const hex = (s) => Uint8Array.from(Buffer.from(s, 'hex'))

/** A secp256k1 private key from 32 raw bytes (protobuf PrivateKey: Type 2 = Secp256k1). */
function secp256k1Private (secretHex) {
  const raw = hex(secretHex)
  return privateKeyFromProtobuf(Uint8Array.from([0x08, 0x02, 0x12, raw.length, ...raw]))
}

async function vectors (out) {
  const cases = [
    { secret: '11'.repeat(32), value: '/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', seq: 1n, now: 1764720000000, lifetime: 48 * 3600 * 1000, ttlNs: 3600n * 1000000000n },
    { secret: '2a'.repeat(32), value: '/ipfs/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi', seq: 1764720000123n, now: 1764720000456, lifetime: 7 * 24 * 3600 * 1000, ttlNs: 300n * 1000000000n }
  ]
  const outCases = []
  for (const c of cases) {
    const key = secp256k1Private(c.secret)
    const record = await createIPNSRecord(key, c.value, c.seq, c.lifetime, { v1Compatible: false, ttlNs: c.ttlNs, now: c.now })
    outCases.push({
      secret: c.secret,
      value: c.value,
      sequence: c.seq.toString(),
      now_ms: c.now,
      lifetime_ms: c.lifetime,
      ttl_ns: c.ttlNs.toString(),
      record: Buffer.from(IPNSEntry.encode(record)).toString('base64')
    })
  }
  await writeFile(out, JSON.stringify({ generator: '@helia/ipns 10.1.0 createIPNSRecord (v1Compatible: false)', cases: outCases }, null, 2) + '\n')
}

async function validate (pubHex, recordB64) {
  const key = publicKeyFromRaw(hex(pubHex))
  const bytes = Uint8Array.from(Buffer.from(recordB64, 'base64'))
  const routingKey = multihashToIPNSRoutingKey(key.toMultihash())
  try {
    const keychain = { loadPublicKeyFromProtobuf: async (buf) => publicKeyFromProtobuf(buf) }
    const record = await ipnsValidator(routingKey, bytes, keychain)
    const data = cborDecode(record.data)
    process.stdout.write(JSON.stringify({
      valid: true,
      value: new TextDecoder().decode(data.Value),
      sequence: data.Sequence.toString(),
      validity: new TextDecoder().decode(data.Validity),
      error: null
    }) + '\n')
  } catch (err) {
    process.stdout.write(JSON.stringify({ valid: false, value: null, sequence: null, validity: null, error: `${err.name}: ${err.message}` }) + '\n')
  }
}

const [mode, ...args] = process.argv.slice(2)
const here = dirname(fileURLToPath(import.meta.url))
if (mode === 'vectors') await vectors(args[0] ?? resolve(here, '../../node/tests/data/ipns_vectors.json'))
else if (mode === 'validate' && args.length === 2) await validate(args[0], args[1])
else {
  process.stderr.write('usage: ipns-check.mjs vectors [OUT.json] | validate PUBKEY_HEX RECORD_BASE64\n')
  process.exit(2)
}
