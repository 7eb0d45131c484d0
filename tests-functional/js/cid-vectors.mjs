// Computes IPFS UnixFS CID test vectors with real Helia and writes them as JSON.
//
//   node --import ./shim.mjs cid-vectors.mjs [OUT.json]
//
// OUT.json defaults to ../../node/tests/data/unixfs_vectors.json (relative to
// this script). A CAR v1 of the `1mib_plus_1` vector is written next to it as
// helia_1mib_plus_1.car. No networking: Helia is created with
// createHeliaLight() (no libp2p, no routers, no block brokers) over an
// in-memory blockstore.
//
// Input bytes (PRNG), reproducible from (seed, size) alone:
//   xorshift32 (Marsaglia 2003, shifts 13/17/5) on a uint32 state x = seed
//   (seed != 0). For every byte i = 0..size-1, first advance the state:
//       x ^= x << 13;  x &= 0xFFFFFFFF
//       x ^= x >> 17   (logical shift)
//       x ^= x << 5;   x &= 0xFFFFFFFF
//   then byte[i] = x & 0xFF (low byte of the new state).
//   E.g. seed 1 -> states 0x00042021, 0x04080601, ... -> bytes 21 01 ...
//
// Each vector is computed three ways and must agree (CID and block count):
//   helia     @helia/unixfs addBytes(bytes, { profile: 'unixfs-v1-2025', ... })
//   explicit  ipfs-unixfs-importer importFile with explicit options
//             (cidVersion 1, rawLeaves, fixedSize chunker, balanced layout,
//             reduceSingleLeafToSelf)
//   profile   ipfs-unixfs-importer importFile with only { profile } (default
//             profile vectors only, exercises the importer's own profile table)

import { createHash } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, basename, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { car } from '@helia/car'
import { unixfs } from '@helia/unixfs'
import { CarReader } from '@ipld/car'
import * as dagPb from '@ipld/dag-pb'
import { MemoryBlockstore } from 'blockstore-core'
import { createHeliaLight } from 'helia'
import { importFile } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { xorshift32Bytes } from './prng.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const outPath = resolve(process.argv[2] ?? join(here, '../../node/tests/data/unixfs_vectors.json'))
const carPath = join(dirname(outPath), 'helia_1mib_plus_1.car')

const PROFILE = 'unixfs-v1-2025'
const MIB = 1048576
const DEFAULT_CHUNK = MIB
const DEFAULT_LINKS = 1024

const VECTORS = [
  // unixfs-v1-2025 profile (1 MiB chunks, 1024 links per node)
  { name: 'empty', seed: 1, size: 0 },
  { name: 'one_byte', seed: 2, size: 1 },
  { name: '1mib_minus_1', seed: 3, size: MIB - 1 },
  { name: '1mib', seed: 4, size: MIB },
  { name: '1mib_plus_1', seed: 5, size: MIB + 1, car: true },
  { name: '5mib_plus_12345', seed: 6, size: 5 * MIB + 12345 },
  // custom trees (same profile otherwise, chunker/layout overridden)
  { name: 'c256_l4_3levels', seed: 7, size: 256 * 4 * 4 + 7, chunk_size: 256, max_links: 4 },
  { name: 'c256_l4_2levels', seed: 8, size: 256 * 3 + 1, chunk_size: 256, max_links: 4 },
  { name: 'c1000_l3', seed: 9, size: 10000, chunk_size: 1000, max_links: 3 }
]

// A community history's root as Helia builds it: addDirectory(), then cp(file, dir, name) for
// every entry (an `index` and archives named by id), each file added with the profile. The
// directory's links (name, CID, Tsize) and CID are recorded.
const DIRECTORIES = [
  {
    name: 'history',
    entries: [
      { name: 'index', vector: 'one_byte' },
      { name: createHash('sha256').update('archive a').digest('hex'), vector: '1mib_plus_1' },
      { name: createHash('sha256').update('archive b').digest('hex'), vector: '5mib_plus_12345' },
      { name: createHash('sha256').update('archive c').digest('hex'), vector: '1mib' }
    ]
  },
  { name: 'empty_history', entries: [] }
]

async function computeDirectory (d) {
  const store = new MemoryBlockstore()
  const helia = createHeliaLight({ blockstore: store })
  await helia.start()
  const fs = unixfs(helia)
  let dir = await fs.addDirectory()
  for (const e of d.entries) {
    const v = VECTORS.find((x) => x.name === e.vector)
    const file = await fs.addBytes(xorshift32Bytes(v.seed, v.size), { profile: PROFILE })
    dir = await fs.cp(file, dir, e.name)
  }
  // blockstore-core 7 hands a block out as a generator of chunks.
  const chunks = []
  for await (const chunk of store.get(dir)) chunks.push(chunk)
  const node = dagPb.decode(Buffer.concat(chunks))
  await helia.stop()
  return {
    name: d.name,
    entries: d.entries.map((e) => e.vector),
    links: node.Links.map((l) => ({ name: l.Name, cid: l.Hash.toString(), tsize: l.Tsize })),
    links_vectors: node.Links.map((l) => d.entries.find((e) => e.name === l.Name).vector),
    cid: dir.toString()
  }
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')
const hex = (bytes) => Buffer.from(bytes).toString('hex')

async function countBlocks (blockstore) {
  let n = 0
  for await (const _ of blockstore.getAll()) n++ // eslint-disable-line no-unused-vars
  return n
}

async function pkgVersion (name) {
  const pkg = JSON.parse(await readFile(join(here, 'node_modules', name, 'package.json'), 'utf8'))
  return pkg.version
}

async function computeVector (v) {
  const custom = v.chunk_size != null
  const chunkSize = v.chunk_size ?? DEFAULT_CHUNK
  const maxLinks = v.max_links ?? DEFAULT_LINKS
  const bytes = xorshift32Bytes(v.seed, v.size)
  const results = {}

  // 1. Helia + @helia/unixfs
  const heliaStore = new MemoryBlockstore()
  const helia = createHeliaLight({ blockstore: heliaStore })
  await helia.start()
  const heliaOpts = { profile: PROFILE }
  if (custom) {
    heliaOpts.chunker = fixedSize({ chunkSize })
    heliaOpts.layout = balanced({ maxChildrenPerNode: maxLinks })
  }
  const heliaCid = await unixfs(helia).addBytes(bytes, heliaOpts)
  results.helia = { cid: heliaCid.toString(), blocks: await countBlocks(heliaStore) }

  // 2. importer with explicit options
  const explicitStore = new MemoryBlockstore()
  const explicit = await importFile({ content: bytes }, explicitStore, {
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize }),
    layout: balanced({ maxChildrenPerNode: maxLinks }),
    reduceSingleLeafToSelf: true
  })
  results.explicit = { cid: explicit.cid.toString(), blocks: await countBlocks(explicitStore) }

  // 3. importer with the profile alone (default-profile vectors only)
  if (!custom) {
    const profileStore = new MemoryBlockstore()
    const prof = await importFile({ content: bytes }, profileStore, { profile: PROFILE })
    results.profile = { cid: prof.cid.toString(), blocks: await countBlocks(profileStore) }
  }

  for (const [how, r] of Object.entries(results)) {
    if (r.cid !== results.helia.cid || r.blocks !== results.helia.blocks) {
      throw new Error(`${v.name}: ${how} disagrees with helia: ${JSON.stringify(results)}`)
    }
  }

  const record = {
    name: v.name,
    profile: custom ? `${PROFILE} (custom chunker/layout)` : PROFILE,
    seed: v.seed,
    size: v.size,
    chunk_size: chunkSize,
    max_links: maxLinks,
    cid: results.helia.cid,
    blocks: results.helia.blocks,
    content_sha256: sha256(bytes),
    first_bytes_hex: hex(bytes.subarray(0, 16))
  }

  let carInfo
  if (v.car) {
    const chunks = []
    for await (const buf of car(helia).export(heliaCid, { offline: true })) chunks.push(buf)
    const carBytes = Buffer.concat(chunks)
    // sanity check the CAR we just produced
    const reader = await CarReader.fromBytes(carBytes)
    const roots = (await reader.getRoots()).map(String)
    let carBlocks = 0
    for await (const _ of reader.blocks()) carBlocks++ // eslint-disable-line no-unused-vars
    if (roots.length !== 1 || roots[0] !== record.cid || carBlocks !== record.blocks) {
      throw new Error(`CAR mismatch: roots=${roots} blocks=${carBlocks}`)
    }
    await writeFile(carPath, carBytes)
    carInfo = {
      vector: v.name,
      file: basename(carPath),
      version: 1,
      root: record.cid,
      blocks: carBlocks,
      car_size: carBytes.length,
      car_sha256: sha256(carBytes),
      content_size: v.size,
      content_sha256: record.content_sha256
    }
  }

  await helia.stop()
  return { record, carInfo }
}

async function main () {
  await mkdir(dirname(outPath), { recursive: true })
  const vectors = []
  let carInfo
  for (const v of VECTORS) {
    const r = await computeVector(v)
    vectors.push(r.record)
    carInfo ??= r.carInfo
    process.stderr.write(`${r.record.name}: ${r.record.cid} (${r.record.blocks} blocks)\n`)
  }

  const directories = []
  for (const d of DIRECTORIES) {
    const r = await computeDirectory(d)
    directories.push(r)
    process.stderr.write(`directory ${r.name}: ${r.cid} (${r.links.length} links)\n`)
  }

  const out = {
    generator: {
      script: 'tests-functional/js/cid-vectors.mjs',
      packages: Object.fromEntries(await Promise.all(
        ['helia', '@helia/unixfs', '@helia/car', 'ipfs-unixfs-importer', '@ipld/car', '@ipld/dag-pb']
          .map(async (n) => [n, await pkgVersion(n)])
      ))
    },
    prng: {
      name: 'xorshift32',
      algorithm: 'x = seed (uint32, non-zero); for i in 0..size: { x ^= x << 13; x ^= x >> 17 (logical); x ^= x << 5; (all mod 2^32) byte[i] = x & 0xff }',
      note: 'state is advanced before each byte; byte[i] is the low byte of the state after i+1 steps'
    },
    import_options: {
      profile: PROFILE,
      cid_version: 1,
      raw_leaves: true,
      chunker: 'fixed-size (chunk_size)',
      layout: 'balanced (max_links children per node)',
      reduce_single_leaf_to_self: true,
      hash: 'sha2-256',
      cid_encoding: 'base32 (multibase b)'
    },
    vectors,
    car: carInfo,
    directories
  }
  await writeFile(outPath, JSON.stringify(out, null, 2) + '\n')
  process.stderr.write(`wrote ${outPath}\nwrote ${carPath}\n`)
}

await main()
