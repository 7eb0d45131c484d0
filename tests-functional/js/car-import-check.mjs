// Imports a CAR v1 into a fresh, offline Helia (in-memory blockstore) with
// @helia/car, re-reads the root file with the UnixFS exporter and prints
//   {"root": "<cid>", "size": <bytes>, "sha256": "<hex>", "blocks": <n>}
//
//   node --import ./shim.mjs car-import-check.mjs FILE.car
//
// Exits non-zero if the CAR does not have exactly one root, if any block's
// bytes do not match its CID's multihash, if the root is not a UnixFS file,
// or if a block is missing.

import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { car } from '@helia/car'
import { CarReader } from '@ipld/car'
import { MemoryBlockstore } from 'blockstore-core'
import { createHeliaLight } from 'helia'
import { exporter } from 'ipfs-unixfs-exporter'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'

const HASHERS = { [sha256.code]: sha256, [identity.code]: identity }

async function main () {
  const file = process.argv[2]
  if (file == null) throw new Error('usage: car-import-check.mjs FILE.car')

  const reader = await CarReader.fromBytes(await readFile(file))
  const roots = await reader.getRoots()
  if (roots.length !== 1) throw new Error(`expected exactly 1 root, got ${roots.length}`)
  const root = roots[0]

  // CarReader does not verify hashes: do it here so a bad CAR fails loudly.
  let blocks = 0
  for await (const { cid, bytes } of reader.blocks()) {
    const hasher = HASHERS[cid.multihash.code]
    if (hasher == null) throw new Error(`${cid}: unsupported multihash 0x${cid.multihash.code.toString(16)}`)
    const digest = await hasher.digest(bytes)
    if (Buffer.compare(digest.bytes, cid.multihash.bytes) !== 0) throw new Error(`${cid}: hash mismatch`)
    blocks++
  }

  const helia = createHeliaLight({ blockstore: new MemoryBlockstore() })
  await helia.start()
  try {
    await car(helia).import(reader)

    const entry = await exporter(root, helia.blockstore, { offline: true })
    if (entry.type !== 'file' && entry.type !== 'raw') {
      throw new Error(`root ${root} is a ${entry.type}, expected a file`)
    }
    const hash = createHash('sha256')
    let size = 0
    for await (const chunk of entry.content({ offline: true })) {
      hash.update(chunk)
      size += chunk.length
    }
    if (BigInt(size) !== BigInt(entry.size)) {
      throw new Error(`read ${size} bytes but UnixFS metadata says ${entry.size}`)
    }
    process.stdout.write(JSON.stringify({ root: root.toString(), size, sha256: hash.digest('hex'), blocks }) + '\n')
  } finally {
    await helia.stop()
  }
}

main().catch((err) => {
  process.stderr.write(`car-import-check: ${err.message ?? err}\n`)
  process.exit(1)
})
