// A networked Helia peer for bitswap interop tests. It only ever talks to
// 127.0.0.1: libp2p is built explicitly (TCP + Noise + Yamux + identify,
// listening on 127.0.0.1), with no bootstrap, peer discovery, routers, DHT,
// mDNS, AutoNAT, UPnP or relay. Blocks are fetched only with bitswap, from peers
// we dial ourselves.
//
//   node --import ./shim.mjs helia-peer.mjs serve [--size N --seed S | FILE]
//     Adds the bytes (FILE, or N xorshift32 bytes from seed S, same PRNG as
//     cid-vectors.mjs) with @helia/unixfs addBytes and profile 'unixfs-v1-2025',
//     prints ONE JSON line {"peer_id", "addrs", "cid", "size", "sha256"}, then
//     serves blocks over bitswap until stdin closes or SIGTERM/SIGINT arrives,
//     stops cleanly and exits 0.
//
//   node --import ./shim.mjs helia-peer.mjs pin CID MULTIADDR [--timeout-ms T]
//     Dials MULTIADDR, pins CID with helia.pins.add (which fetches every block
//     of the DAG over bitswap), then prints ONE JSON line {"peer_id", "addrs",
//     "cid", "pinned", "blocks", "entries"} (`entries`: name, cid and size of
//     each link when the root is a directory, from unixfs ls) and serves the
//     pinned blocks until stdin closes or a signal arrives, like serve.
//
//   node --import ./shim.mjs helia-peer.mjs fetch CID MULTIADDR [--out FILE]
//       [--timeout-ms T] [--wait-peer-protocols]
//     Dials MULTIADDR (another Helia, or the Rust node), streams
//     unixfs(helia).cat(CID) over bitswap from that peer, hashing as it goes
//     (and writing to --out if given), prints one JSON line
//     {"cid", "size", "sha256", "seconds", "mb_per_s"} (MB = 1e6 bytes; the
//     clock starts after the dial and any --wait-peer-protocols wait). Exits 1
//     with a message on stderr on any failure or after T ms (default 120000).
//
// With DEBUG_BITSWAP=1 every bitswap stream this peer opens or accepts is
// logged to stderr as JSON lines prefixed "[bitswap]": the protocol id, the
// stream id and direction, each length-prefixed message (wantlist entries with
// cid, priority, cancel, wantType, sendDontHave, and the full flag; block and
// block-presence counts), stream close, and identify results. A summary line
// is printed when the peer stops.

import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { once, setMaxListeners } from 'node:events'
import { withBitswap } from '@helia/bitswap'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core'
import { createHeliaLight } from 'helia'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { xorshift32Bytes } from './prng.mjs'

const BITSWAP_PREFIX = '/ipfs/bitswap/'
const DEBUG = process.env.DEBUG_BITSWAP != null && process.env.DEBUG_BITSWAP !== '' && process.env.DEBUG_BITSWAP !== '0'

function usage () {
  return 'usage:\n' +
    '  helia-peer.mjs serve [--size N --seed S | FILE]\n' +
    '  helia-peer.mjs pin CID MULTIADDR [--timeout-ms T]\n' +
    '  helia-peer.mjs fetch CID MULTIADDR [--out FILE] [--timeout-ms T] [--wait-peer-protocols]'
}

/**
 * Helia 7 way of getting a networked node without createHelia()'s defaults:
 * createHeliaLight() (no routers, no block brokers) + our own libp2p exposed as
 * `helia.libp2p` + the withBitswap() mixin from @helia/bitswap, which on
 * helia.start() builds a BitswapBlockBroker from the Helia instance (it uses
 * helia.libp2p, helia.blockstore, helia.routing, helia.logger, helia.getHasher)
 * and adds it as the only block broker. We deliberately do NOT use
 * @helia/libp2p's withLibp2p()/withLibp2pLight(): the former adds the default
 * libp2p config (bootstrap, DHT, delegated routing, ...) and both add a
 * 'libp2p-router' to Helia's routing.
 */
async function createNode () {
  const libp2p = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services: { identify: identify() }
  })
  const debug = DEBUG ? instrument(libp2p) : null
  const helia = createHeliaLight({ blockstore: new MemoryBlockstore() })
  Object.defineProperty(helia, 'libp2p', { value: libp2p, enumerable: true, configurable: true })
  withBitswap(helia)
  await helia.start()
  if (!helia.hasBlockBroker('bitswap')) throw new Error('bitswap block broker was not installed')
  let stopped = false
  return {
    helia,
    libp2p,
    async stop () {
      if (stopped) return
      stopped = true
      await helia.stop()
      await libp2p.stop()
      debug?.summary()
    }
  }
}

// ---------------------------------------------------------------- serve

async function serve (args) {
  let size = null
  let seed = null
  let file = null
  while (args.length > 0) {
    const a = args.shift()
    if (a === '--size') size = Number(args.shift())
    else if (a === '--seed') seed = Number(args.shift())
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}\n${usage()}`)
    else if (file == null) file = a
    else throw new Error(usage())
  }
  let bytes
  if (file != null) {
    if (size != null || seed != null) throw new Error('give either FILE or --size/--seed, not both')
    bytes = new Uint8Array(await readFile(file))
  } else {
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`--size must be a non-negative integer\n${usage()}`)
    bytes = xorshift32Bytes(seed ?? 1, size)
  }

  const node = await createNode()
  const { helia, libp2p } = node
  const shutdown = stopper(node, 'serve')
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))

  try {
    const cid = await unixfs(helia).addBytes(bytes, { profile: 'unixfs-v1-2025' })
    const sha256 = createHash('sha256').update(bytes).digest('hex')
    const peerId = libp2p.peerId.toString()
    const addrs = libp2p.getMultiaddrs().map((ma) => ma.toString())
      .map((s) => s.includes('/p2p/') ? s : `${s}/p2p/${peerId}`)
    process.stdout.write(JSON.stringify({ peer_id: peerId, addrs, cid: cid.toString(), size: bytes.length, sha256 }) + '\n')
    bytes = null
  } catch (err) {
    await node.stop().catch(() => {})
    throw err
  }

  serveUntilExit(shutdown)
}

/** Serves until stdin closes (EOF, or the parent going away); `shutdown` stops the node. */
function serveUntilExit (shutdown) {
  process.stdin.on('end', () => shutdown('stdin closed'))
  process.stdin.on('close', () => shutdown('stdin closed'))
  process.stdin.on('error', () => shutdown('stdin error'))
  process.stdin.resume()
}

/** A stopper that stops `node` once and exits. */
function stopper (node, what) {
  let exiting = false
  return (why) => {
    if (exiting) return
    exiting = true
    if (DEBUG) process.stderr.write(`[bitswap] {"ev":"shutdown","why":"${why}"}\n`)
    node.stop().then(() => process.exit(0), (err) => {
      process.stderr.write(`helia-peer ${what}: error while stopping: ${err.stack ?? err}\n`)
      process.exit(1)
    })
  }
}

// ---------------------------------------------------------------- pin

async function pin (args) {
  let timeoutMs = 120_000
  const pos = []
  while (args.length > 0) {
    const a = args.shift()
    if (a === '--timeout-ms') timeoutMs = Number(args.shift())
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}\n${usage()}`)
    else pos.push(a)
  }
  if (pos.length !== 2) throw new Error(usage())
  const cid = CID.parse(pos[0])
  const signal = AbortSignal.timeout(timeoutMs)
  setMaxListeners(Infinity, signal)
  const node = await createNode()
  const { helia, libp2p } = node
  const shutdown = stopper(node, 'pin')
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
  try {
    await libp2p.dial(multiaddr(pos[1]), { signal })
    let blocks = 0
    for await (const _ of helia.pins.add(cid, { signal })) blocks++ // eslint-disable-line no-unused-vars
    const entries = []
    const root = await unixfs(helia).stat(cid, { signal })
    if (root.type === 'directory') {
      for await (const e of unixfs(helia).ls(cid, { signal })) {
        entries.push({ name: e.name, cid: e.cid.toString(), size: Number(e.size ?? 0) })
      }
    }
    const peerId = libp2p.peerId.toString()
    const addrs = libp2p.getMultiaddrs().map((ma) => ma.toString())
      .map((s) => s.includes('/p2p/') ? s : `${s}/p2p/${peerId}`)
    const pinned = await helia.pins.isPinned(cid, { signal })
    process.stdout.write(JSON.stringify({ peer_id: peerId, addrs, cid: cid.toString(), pinned, blocks, entries }) + '\n')
  } catch (err) {
    await node.stop().catch(() => {})
    if (signal.aborted) throw new Error(`pin timed out after ${timeoutMs} ms`)
    throw err
  }
  serveUntilExit(shutdown)
}

// ---------------------------------------------------------------- fetch

async function fetch (args) {
  let out = null
  let timeoutMs = 120_000
  let waitPeerProtocols = false
  const pos = []
  while (args.length > 0) {
    const a = args.shift()
    if (a === '--out') out = args.shift()
    else if (a === '--timeout-ms') timeoutMs = Number(args.shift())
    else if (a === '--wait-peer-protocols') waitPeerProtocols = true
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}\n${usage()}`)
    else pos.push(a)
  }
  if (pos.length !== 2) throw new Error(usage())
  if (!(timeoutMs > 0)) throw new Error('--timeout-ms must be > 0')
  const cid = CID.parse(pos[0])
  const addr = multiaddr(pos[1])

  const signal = AbortSignal.timeout(timeoutMs)
  setMaxListeners(Infinity, signal) // every in-flight block want listens on it
  const timeoutError = () => new Error(`timed out after ${timeoutMs} ms`)
  const node = await createNode()
  const { helia, libp2p } = node
  let sink = null
  try {
    let phase = 'dialling'
    signal.addEventListener('abort', () => {
      process.stderr.write(`helia-peer fetch: timeout after ${timeoutMs} ms while ${phase}\n`)
    }, { once: true })

    const conn = await libp2p.dial(addr, { signal })
    const remote = conn.remotePeer

    // Helia itself does not need this wait: @helia/bitswap only sends wants to
    // peers that its libp2p topology reports, and the registrar only reports a
    // peer after identify lists exactly '/ipfs/bitswap/1.2.0' among the remote's
    // protocols; wants made before that sit in the wantlist and go out (as one
    // full wantlist) as soon as identify completes. So without this flag a
    // server that never advertises bitswap just makes the fetch hang until the
    // timeout; with it we fail fast with the protocol list, and the timing
    // below excludes the identify round trip.
    if (waitPeerProtocols) {
      phase = `waiting for identify from ${remote} to list ${BITSWAP_PREFIX}*`
      const protocols = await waitForBitswapProtocols(libp2p, remote, signal)
      if (!protocols.includes('/ipfs/bitswap/1.2.0')) {
        process.stderr.write(`helia-peer fetch: warning: peer lists ${protocols.filter((p) => p.startsWith(BITSWAP_PREFIX)).join(', ')} but not /ipfs/bitswap/1.2.0; Helia only sends wants to peers listing /ipfs/bitswap/1.2.0\n`)
      }
    }

    phase = `fetching ${cid} from ${remote}`
    if (out != null) sink = createWriteStream(out)
    const hash = createHash('sha256')
    let size = 0
    const t0 = process.hrtime.bigint()
    for await (const chunk of unixfs(helia).cat(cid, { signal })) {
      hash.update(chunk)
      size += chunk.length
      if (sink != null && !sink.write(chunk)) await once(sink, 'drain', { signal })
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    if (sink != null) {
      sink.end()
      await once(sink, 'finish')
      sink = null
    }
    const result = {
      cid: cid.toString(),
      size,
      sha256: hash.digest('hex'),
      seconds: Number(seconds.toFixed(4)),
      mb_per_s: seconds > 0 ? Number((size / 1e6 / seconds).toPrecision(4)) : null
    }
    process.stdout.write(JSON.stringify(result) + '\n')
  } catch (err) {
    if (signal.aborted) throw timeoutError()
    throw err
  } finally {
    sink?.destroy()
    await node.stop().catch((err) => process.stderr.write(`helia-peer fetch: error while stopping: ${err.message}\n`))
  }
}

async function waitForBitswapProtocols (libp2p, peerId, signal) {
  return new Promise((resolve, reject) => {
    const done = (fn, v) => {
      libp2p.removeEventListener('peer:identify', onIdentify)
      signal.removeEventListener('abort', onAbort)
      fn(v)
    }
    const check = (protocols) => {
      if (protocols.some((p) => p.startsWith(BITSWAP_PREFIX))) {
        done(resolve, protocols)
        return true
      }
      return false
    }
    const onIdentify = (evt) => {
      if (!evt.detail.peerId.equals(peerId)) return
      if (!check(evt.detail.protocols)) {
        done(reject, new Error(`identify from ${peerId} (agent ${JSON.stringify(evt.detail.agentVersion)}) lists no ${BITSWAP_PREFIX}* protocol: ${JSON.stringify(evt.detail.protocols)}`))
      }
    }
    const onAbort = () => done(reject, new Error('aborted while waiting for identify'))
    libp2p.addEventListener('peer:identify', onIdentify)
    signal.addEventListener('abort', onAbort, { once: true })
    // identify may already have finished during the dial
    libp2p.peerStore.get(peerId).then((peer) => check(peer.protocols), () => {})
  })
}

// ---------------------------------------------------------------- debug

/**
 * Wraps libp2p.dialProtocol / libp2p.handle (which @helia/bitswap's Network
 * uses for every outgoing message and for incoming bitswap streams) to log the
 * bitswap wire traffic. Must run before helia.start() registers the handler.
 */
function instrument (libp2p) {
  const log = (obj) => process.stderr.write(`[bitswap] ${JSON.stringify(obj)}\n`)
  const stats = {
    out_streams: 0,
    out_messages: 0,
    out_msgs_per_stream: {},
    in_streams: 0,
    in_messages: 0,
    in_msgs_per_stream: {},
    protocols: {},
    want_entries: { WantBlock: 0, WantHave: 0, cancel: 0, sendDontHave_true: 0, sendDontHave_false: 0 },
    priorities: {},
    full_true_messages: 0,
    blocks_in: 0,
    blocks_out: 0,
    block_bytes_in: 0,
    block_bytes_out: 0,
    presences_in: 0,
    presences_out: 0
  }
  let BitswapMessage = null
  const ready = import('./node_modules/@helia/bitswap/dist/src/pb/message.js').then((m) => { BitswapMessage = m.BitswapMessage })

  const toBytes = (d) => (d instanceof Uint8Array ? d : d.subarray())
  const describe = (dir, streamId, data) => {
    const msg = BitswapMessage.decode(data)
    const entries = msg.wantlist?.entries ?? []
    if (msg.wantlist?.full === true) stats.full_true_messages++
    for (const e of entries) {
      if (e.cancel === true) stats.want_entries.cancel++
      else stats.want_entries[e.wantType ?? 'WantBlock']++
      stats.want_entries[`sendDontHave_${e.sendDontHave === true}`]++
      stats.priorities[e.priority] = (stats.priorities[e.priority] ?? 0) + 1
    }
    const blockBytes = msg.blocks.reduce((n, b) => n + (b.data?.byteLength ?? 0), 0)
    if (dir === 'out') { stats.blocks_out += msg.blocks.length; stats.block_bytes_out += blockBytes; stats.presences_out += msg.blockPresences.length }
    else { stats.blocks_in += msg.blocks.length; stats.block_bytes_in += blockBytes; stats.presences_in += msg.blockPresences.length }
    const shown = entries.slice(0, 4).map((e) => ({
      cid: CID.decode(e.cid).toString(),
      priority: e.priority,
      cancel: e.cancel,
      wantType: e.wantType,
      sendDontHave: e.sendDontHave
    }))
    log({
      ev: `${dir}-msg`,
      stream: streamId,
      bytes: data.byteLength,
      wantlist: msg.wantlist == null ? null : { full: msg.wantlist.full, n_entries: entries.length, entries: shown },
      blocks: msg.blocks.length,
      block_bytes: blockBytes,
      block_prefixes: [...new Set(msg.blocks.map((b) => Buffer.from(b.prefix ?? []).toString('hex')))],
      presences: msg.blockPresences.map((p) => ({ cid: CID.decode(p.cid).toString(), type: p.type })).slice(0, 4),
      n_presences: msg.blockPresences.length,
      pendingBytes: msg.pendingBytes
    })
  }
  // Length-prefixed frame splitter (unsigned varint length, then payload).
  const framer = (onFrame) => {
    let chunks = []
    let len = 0
    return (data) => {
      chunks.push(data); len += data.byteLength
      let buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
      let off = 0
      for (;;) {
        let n = 0; let shift = 0; let p = off; let ok = false
        while (p < buf.byteLength) {
          const b = buf[p++]; n += (b & 0x7f) * 2 ** shift; shift += 7
          if ((b & 0x80) === 0) { ok = true; break }
        }
        if (!ok || buf.byteLength - p < n) break
        onFrame(buf.subarray(p, p + n)); off = p + n
      }
      buf = buf.subarray(off); chunks = buf.byteLength > 0 ? [buf] : []; len = buf.byteLength
    }
  }

  const origDialProtocol = libp2p.dialProtocol.bind(libp2p)
  libp2p.dialProtocol = async (peer, protocols, options) => {
    const stream = await origDialProtocol(peer, protocols, options)
    if (!String(stream.protocol).startsWith(BITSWAP_PREFIX)) return stream
    await ready
    const id = `out-${stream.id}`
    stats.out_streams++
    stats.protocols[stream.protocol] = (stats.protocols[stream.protocol] ?? 0) + 1
    let msgs = 0
    log({ ev: 'out-stream-open', stream: id, protocol: stream.protocol, requested: protocols, peer: String(peer) })
    const feed = framer((frame) => { msgs++; stats.out_messages++; describe('out', id, frame) })
    const origSend = stream.send.bind(stream)
    stream.send = (data) => { feed(toBytes(data)); return origSend(data) }
    for (const m of ['closeRead', 'close', 'abort']) {
      const orig = stream[m].bind(stream)
      stream[m] = (...a) => {
        log({ ev: `out-stream-${m}`, stream: id, messages_so_far: msgs, ...(m === 'abort' ? { error: String(a[0]?.message ?? a[0]) } : {}) })
        return orig(...a)
      }
    }
    stream.addEventListener('close', (evt) => {
      stats.out_msgs_per_stream[msgs] = (stats.out_msgs_per_stream[msgs] ?? 0) + 1
      log({ ev: 'out-stream-closed', stream: id, messages: msgs, error: evt.error?.message })
    })
    return stream
  }

  const origHandle = libp2p.handle.bind(libp2p)
  libp2p.handle = async (protocols, handler, options) => {
    const list = Array.isArray(protocols) ? protocols : [protocols]
    if (!list.some((p) => p.startsWith(BITSWAP_PREFIX))) return origHandle(protocols, handler, options)
    log({ ev: 'handle', protocols: list, options })
    return origHandle(protocols, (stream, connection) => {
      const id = `in-${stream.id}`
      stats.in_streams++
      stats.protocols[stream.protocol] = (stats.protocols[stream.protocol] ?? 0) + 1
      let msgs = 0
      log({ ev: 'in-stream-open', stream: id, protocol: stream.protocol, peer: connection.remotePeer.toString() })
      const feed = framer((frame) => { msgs++; stats.in_messages++; describe('in', id, frame) })
      // Wrap the 'message' listener the bitswap handler adds (adding our own
      // listener first would make the stream dispatch data before it listens).
      const origAdd = stream.addEventListener.bind(stream)
      stream.addEventListener = (type, fn, opts) => {
        if (type === 'message' && typeof fn === 'function') {
          return origAdd(type, (evt) => { try { feed(toBytes(evt.data)) } catch (e) { log({ ev: 'decode-error', error: e.message }) } fn(evt) }, opts)
        }
        return origAdd(type, fn, opts)
      }
      origAdd('close', (evt) => {
        stats.in_msgs_per_stream[msgs] = (stats.in_msgs_per_stream[msgs] ?? 0) + 1
        log({ ev: 'in-stream-closed', stream: id, messages: msgs, error: evt.error?.message })
      })
      return ready.then(() => handler(stream, connection))
    }, options)
  }

  libp2p.addEventListener('peer:identify', (evt) => {
    log({ ev: 'identify', peer: evt.detail.peerId.toString(), agent: evt.detail.agentVersion, protocols: evt.detail.protocols })
  })
  libp2p.addEventListener('connection:open', (evt) => {
    log({ ev: 'connection-open', peer: evt.detail.remotePeer.toString(), direction: evt.detail.direction, addr: evt.detail.remoteAddr.toString() })
  })

  return {
    summary () { log({ ev: 'summary', ...stats }) }
  }
}

// ---------------------------------------------------------------- main

async function main () {
  const args = process.argv.slice(2)
  const mode = args.shift()
  if (mode === 'serve') await serve(args)
  else if (mode === 'fetch') await fetch(args)
  else if (mode === 'pin') await pin(args)
  else throw new Error(usage())
}

main().catch((err) => {
  const msg = DEBUG ? (err.stack ?? String(err)) : (err.message ?? String(err))
  const causes = err.errors?.map?.((e) => e.message).join('; ')
  process.stderr.write(`helia-peer: ${msg}${causes ? ` (${causes})` : ''}\n`)
  process.exit(1)
})
