// Adds files to an offline, in-memory Helia with @helia/unixfs addBytes and the unixfs-v1-2025
// profile; prints one JSON line per file: {"file", "cid"}. With --car OUT.car (one file only),
// also writes the DAG as a CAR v1 with @helia/car.
//
//   node --import ./shim.mjs helia-add.mjs [--chunk-size N --max-links N] [--car OUT.car] FILE...

import { readFile, writeFile } from 'node:fs/promises'
import { car } from '@helia/car'
import { unixfs } from '@helia/unixfs'
import { MemoryBlockstore } from 'blockstore-core'
import { createHeliaLight } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

async function main () {
  const args = process.argv.slice(2)
  const opts = { profile: 'unixfs-v1-2025' }
  let carOut = null
  let chunkSize = null
  let maxLinks = null
  const files = []
  while (args.length > 0) {
    const a = args.shift()
    if (a === '--car') carOut = args.shift()
    else if (a === '--chunk-size') chunkSize = Number(args.shift())
    else if (a === '--max-links') maxLinks = Number(args.shift())
    else files.push(a)
  }
  if (chunkSize != null) opts.chunker = fixedSize({ chunkSize })
  if (maxLinks != null) opts.layout = balanced({ maxChildrenPerNode: maxLinks })
  if (files.length === 0 || (carOut != null && files.length !== 1)) {
    throw new Error('usage: helia-add.mjs [--chunk-size N --max-links N] [--car OUT.car] FILE...')
  }

  const helia = createHeliaLight({ blockstore: new MemoryBlockstore() })
  await helia.start()
  try {
    for (const file of files) {
      const cid = await unixfs(helia).addBytes(await readFile(file), opts)
      if (carOut != null) {
        const chunks = []
        for await (const buf of car(helia).export(cid, { offline: true })) chunks.push(buf)
        await writeFile(carOut, Buffer.concat(chunks))
      }
      process.stdout.write(JSON.stringify({ file, cid: cid.toString() }) + '\n')
    }
  } finally {
    await helia.stop()
  }
}

main().catch((err) => {
  process.stderr.write(`helia-add: ${err.stack ?? err}\n`)
  process.exit(1)
})
