// A js-libp2p gossipsub peer of a community, for membership tests: a stranger we did not write.
// It only ever talks to 127.0.0.1 (TCP + Noise + Yamux + identify + gossipsub, no discovery).
//
//   node --import ./shim.mjs gossip-peer.mjs --connect MULTIADDR --community ID
//       [--publish N] [--interval-ms MS]
//
// Dials MULTIADDR, subscribes to the community's two topics, and prints one JSON line
// {"listening", "peerId", "author"} (author: the secp256k1 key it signs messages with). With
// --publish N it then publishes N status-go WakuMessages, each validly hashed and signed by its
// own author key (a key no control node admitted), once the peer's subscription is seen. Every
// event is one JSON line on stdout: {"event": "subscribed"} (the remote's subscription arrived),
// {"event": "published", "hash"}, {"event": "received", "topic", "data" (base64)}. Runs until stdin closes or SIGTERM/SIGINT.

import { createHash } from 'node:crypto'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { createLibp2p } from 'libp2p'
import { stopOnExit } from './lifecycle.mjs'

function parse (argv) {
  const o = { publish: 0, intervalMs: 50 }
  while (argv.length > 0) {
    const a = argv.shift()
    if (a === '--connect') o.connect = argv.shift()
    else if (a === '--community') o.community = argv.shift()
    else if (a === '--publish') o.publish = Number(argv.shift())
    else if (a === '--interval-ms') o.intervalMs = Number(argv.shift())
    else throw new Error(`unknown option ${a}`)
  }
  if (!o.connect || !/^0x[0-9a-f]{66}$/.test(o.community ?? '')) throw new Error('--connect MULTIADDR and --community 0x<66 hex> are required')
  return o
}

const hex = (b) => Buffer.from(b).toString('hex')
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const sha256 = (...parts) => new Uint8Array(createHash('sha256').update(Buffer.concat(parts.map((p) => Buffer.from(p)))).digest())

// Protobuf, by hand: a length-delimited field, and a varint field.
function varint (n) {
  const bytes = []
  let v = BigInt(n)
  do {
    let b = Number(v & 0x7fn)
    v >>= 7n
    if (v > 0n) b |= 0x80
    bytes.push(b)
  } while (v > 0n)
  return Uint8Array.from(bytes)
}
const field = (no, bytes) => Buffer.concat([varint((no << 3) | 2), varint(bytes.length), Buffer.from(bytes)])
const vfield = (no, n) => Buffer.concat([varint(no << 3), varint(n)])

// status-go's WakuMessage { sig = 1, timestamp = 2, topic = 3, payload = 4, hash = 6 }, signed
// the way archive-node checks: keccak256(topic || timestamp_be || payload), r || s || v.
function wakuMessage (secret, community, text, timestamp) {
  const topic = keccak_256(new TextEncoder().encode('chat')).slice(0, 4)
  const ts = Buffer.alloc(8)
  ts.writeBigUInt64BE(BigInt(timestamp))
  const payload = new TextEncoder().encode(text)
  const digest = keccak_256(Buffer.concat([topic, ts, payload]))
  // noble puts the recovery byte first; the wire format puts it last.
  const recovered = secp256k1.sign(digest, secret, { prehash: false, format: 'recovered' })
  const sig = Buffer.concat([recovered.slice(1), recovered.slice(0, 1)])
  const hash = sha256(community, topic, ts, payload)
  return {
    bytes: Buffer.concat([field(1, sig), vfield(2, timestamp), field(3, topic), field(4, payload), field(6, hash)]),
    hash: '0x' + hex(hash)
  }
}

async function main () {
  const o = parse(process.argv.slice(2))
  const community = Buffer.from(o.community.slice(2), 'hex')
  const topics = [`/archive-node/1/${o.community}/messages`, `/archive-node/1/${o.community}/archives`]
  const libp2p = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services: {
      identify: identify(),
      // archive-node's message id: sha256(topic || data), whoever relays it.
      pubsub: gossipsub({
        emitSelf: false,
        allowPublishToZeroTopicPeers: true,
        msgIdFn: (m) => sha256(new TextEncoder().encode(m.topic), m.data)
      })
    }
  })
  const pubsub = libp2p.services.pubsub
  pubsub.addEventListener('message', (e) => {
    out({ event: 'received', topic: e.detail.topic, data: Buffer.from(e.detail.data).toString('base64') })
  })
  for (const t of topics) pubsub.subscribe(t)
  const secret = secp256k1.utils.randomSecretKey()
  const author = '0x' + hex(secp256k1.getPublicKey(secret, true))
  const peerId = libp2p.peerId.toString()
  await libp2p.dial(multiaddr(o.connect))
  out({ listening: `${libp2p.getMultiaddrs()[0].toString()}`, peerId, author })

  stopOnExit(libp2p)

  // Once the remote's subscription arrived, messages flow both ways.
  while (pubsub.getSubscribers(topics[0]).length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  out({ event: 'subscribed' })
  if (o.publish > 0) {
    for (let i = 0; i < o.publish; i++) {
      const m = wakuMessage(secret, community, `stranger ${i} ${Date.now()}`, Math.floor(Date.now() / 1000))
      await pubsub.publish(topics[0], m.bytes)
      out({ event: 'published', hash: m.hash })
      await new Promise((resolve) => setTimeout(resolve, o.intervalMs))
    }
    out({ event: 'done' })
  }
}

main().catch((err) => {
  process.stderr.write(`gossip-peer: ${err.stack ?? err}\n`)
  process.exit(1)
})
