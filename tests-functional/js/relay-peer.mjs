// A js-libp2p peer for the NAT tests, on either side of circuit relay v2: a relay and a relayed
// peer we did not write. TCP + Noise + Yamux + identify + ping, no discovery; it talks only to the
// addresses the test gives it (inside the test's own network namespaces).
//
//   node --import ./shim.mjs relay-peer.mjs --serve --listen MULTIADDR
//       A circuit relay v2 server with js-libp2p's default limits (128 KiB and 2 minutes per
//       circuit): what a stranger's public relay offers.
//   node --import ./shim.mjs relay-peer.mjs --reserve RELAY_MULTIADDR
//       Dials the relay, asks it for a reservation and listens through it (`<relay>/p2p-circuit`).
//
// Prints one JSON line {"peerId", "addrs"} once listening (with --reserve: once the relayed
// address is there), then one line per event: {"event": "connected", "peerId", "addr",
// "limited"}, {"event": "disconnected", "peerId"}, and for a relayed ("limited") connection the
// ping sent over it, {"event": "pinged", "peerId", "ms"} or {"event": "pingFailed", "peerId", "error"}. Runs until stdin closes or SIGTERM/SIGINT.

import { randomBytes } from 'node:crypto'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createLibp2p } from 'libp2p'
import { stopOnExit } from './lifecycle.mjs'

function parse (argv) {
  const o = {}
  while (argv.length > 0) {
    const a = argv.shift()
    if (a === '--serve') o.serve = true
    else if (a === '--listen') o.listen = argv.shift()
    else if (a === '--reserve') o.reserve = argv.shift()
    else throw new Error(`unknown option ${a}`)
  }
  if ((o.serve === true) === (o.reserve !== undefined)) throw new Error('one of --serve or --reserve RELAY is required')
  if (o.serve && !o.listen) throw new Error('--serve needs --listen MULTIADDR')
  return o
}

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

// The ping protocol (32 bytes echoed) on a stream of this very connection: js-libp2p's ping
// service would dial the peer anew rather than use a limited (relayed) connection.
async function pingOver (connection) {
  const stream = await connection.newStream('/ipfs/ping/1.0.0', { runOnLimitedConnection: true })
  const data = randomBytes(32)
  const start = Date.now()
  const chunks = []
  let got = 0
  const pong = new Promise((resolve, reject) => {
    stream.addEventListener('message', (evt) => {
      const chunk = Buffer.from(evt.data.subarray())
      chunks.push(chunk)
      got += chunk.length
      if (got >= data.length) resolve()
    })
    stream.addEventListener('close', () => reject(new Error(`stream closed after ${got} of ${data.length} bytes`)))
  })
  stream.send(data)
  await pong
  if (!Buffer.concat(chunks).subarray(0, data.length).equals(data)) throw new Error('the pong differs from the ping')
  const ms = Date.now() - start
  await stream.close()
  return ms
}

async function main () {
  const o = parse(process.argv.slice(2))
  const services = { identify: identify(), ping: ping() }
  if (o.serve) services.relay = circuitRelayServer()
  const libp2p = await createLibp2p({
    // Listening on `<relay>/p2p-circuit` makes the transport dial that relay and ask it for a
    // reservation.
    addresses: { listen: o.serve ? [o.listen] : [`${o.reserve}/p2p-circuit`] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services
  })
  libp2p.addEventListener('connection:open', (e) => {
    const c = e.detail
    out({ event: 'connected', peerId: c.remotePeer.toString(), addr: c.remoteAddr.toString(), limited: c.limits != null })
    // A stream each way through a relayed connection: ping the peer over it.
    if (c.limits != null) {
      pingOver(c)
        .then((ms) => out({ event: 'pinged', peerId: c.remotePeer.toString(), ms }))
        .catch((err) => out({ event: 'pingFailed', peerId: c.remotePeer.toString(), error: `${err}` }))
    }
  })
  libp2p.addEventListener('peer:disconnect', (e) => out({ event: 'disconnected', peerId: e.detail.toString() }))
  stopOnExit(libp2p)

  if (o.reserve) {
    while (!libp2p.getMultiaddrs().some((a) => a.toString().includes('/p2p-circuit'))) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  out({ peerId: libp2p.peerId.toString(), addrs: libp2p.getMultiaddrs().map((a) => a.toString()) })
}

main().catch((err) => {
  process.stderr.write(`relay-peer: ${err.stack ?? err}\n`)
  process.exit(1)
})
