// A Helia 7 node on the IPFS DHT, for archive-node's IPNS tests. libp2p on 127.0.0.1 only (no
// bootstrap, discovery, relay or AutoNAT) with identify, ping, bitswap and @libp2p/kad-dht
// (protocol /ipfs/kad/1.0.0, server mode, Helia's IPNS validator and selector from
// @helia/ipns: a record put to it is stored only when Helia's own code finds it valid).
//
//   node --import ./shim.mjs dht-peer.mjs
//
// Prints ONE JSON line {"peer_id", "addrs"}, then answers one JSON command per stdin line with
// one JSON line {"ok": true, ...} or {"ok": false, "error"}:
//   {"op": "dial", "addr"}                  connects (and waits until the DHT knows the peer)
//   {"op": "pin", "cid"}                    helia.pins.add: fetches every block, pins the root
//   {"op": "resolve", "key"}                IPNS name of the 33-byte compressed secp256k1 key
//                                           (hex): DHT get, Helia's validator and selector ->
//                                           {"value", "sequence", "validity", "records"}
//   {"op": "forge", "key", "value", "sequence"}
//                                           a record of that name signed by ANOTHER key
//                                           -> {"record"} (base64)
//   {"op": "put", "key", "record"}          DHT put of raw record bytes under that name,
//                                           unvalidated (what a hostile peer sends)
// Stops on stdin EOF or SIGTERM/SIGINT.

import { createInterface } from 'node:readline'
import { withBitswap } from '@helia/bitswap'
import { createIPNSRecord, ipnsSelector, ipnsValidator, IPNSEntry, multihashToIPNSRoutingKey } from '@helia/ipns'
import { generateKeyPair, publicKeyFromProtobuf, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { noise } from '@libp2p/noise'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { decode as cborDecode } from '@ipld/dag-cbor'
import { MemoryBlockstore } from 'blockstore-core'
import { createHeliaLight } from 'helia'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { stopOnExit } from './lifecycle.mjs'

const TIMEOUT_MS = 60_000

// @helia/ipns 10's validator reads the name's key through a keychain (Helia's node passes its
// own); this one loads a public key as libp2p does, so the checks are @helia/ipns's.
const keychain = { loadPublicKeyFromProtobuf: async (buf) => publicKeyFromProtobuf(buf) }
const validateIpns = (key, value, options) => ipnsValidator(key, value, keychain, options)
// ...and its selector reads decoded entries, where the DHT hands it record bytes.
const selectIpns = (key, records) => ipnsSelector(key, records.map((r) => IPNSEntry.decode(r)))

const libp2p = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  peerDiscovery: [],
  services: {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({
      protocol: '/ipfs/kad/1.0.0',
      clientMode: false,
      peerInfoMapper: passthroughMapper,
      allowQueryWithZeroPeers: true,
      validators: { ipns: validateIpns },
      selectors: { ipns: selectIpns }
    })
  }
})
const helia = createHeliaLight({ blockstore: new MemoryBlockstore() })
Object.defineProperty(helia, 'libp2p', { value: libp2p, enumerable: true, configurable: true })
withBitswap(helia)
await helia.start()
stopOnExit(libp2p)

const routingKey = (keyHex) => multihashToIPNSRoutingKey(publicKeyFromRaw(Uint8Array.from(Buffer.from(keyHex, 'hex'))).toMultihash())
const text = (b) => new TextDecoder().decode(b)

async function dial ({ addr }) {
  const conn = await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(TIMEOUT_MS) })
  // The DHT adds a peer once identify listed its protocol.
  const deadline = Date.now() + TIMEOUT_MS
  while (Date.now() < deadline) {
    const peer = await libp2p.peerStore.get(conn.remotePeer).catch(() => null)
    if (peer?.protocols.includes('/ipfs/kad/1.0.0')) return { peer: conn.remotePeer.toString() }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`${conn.remotePeer} never listed /ipfs/kad/1.0.0`)
}

async function pin ({ cid }) {
  let blocks = 0
  for await (const _ of helia.pins.add(CID.parse(cid), { signal: AbortSignal.timeout(TIMEOUT_MS) })) blocks++ // eslint-disable-line no-unused-vars
  return { blocks, pinned: await helia.pins.isPinned(CID.parse(cid)) }
}

async function resolve ({ key }) {
  const rk = routingKey(key)
  const records = []
  for await (const ev of libp2p.services.dht.get(rk, { signal: AbortSignal.timeout(TIMEOUT_MS) })) {
    if (ev.name === 'VALUE') {
      try {
        await validateIpns(rk, ev.value)
        records.push(ev.value)
      } catch {}
    }
  }
  if (records.length === 0) throw new Error('no valid record')
  const best = IPNSEntry.decode(records[selectIpns(rk, records)])
  const data = cborDecode(best.data)
  return { value: text(data.Value), sequence: data.Sequence.toString(), validity: text(data.Validity), records: records.length }
}

async function forge ({ key, value, sequence }) {
  const other = await generateKeyPair('secp256k1')
  const record = await createIPNSRecord(other, value, BigInt(sequence), 3600_000, { v1Compatible: false })
  void key
  return { record: Buffer.from(IPNSEntry.encode(record)).toString('base64') }
}

async function put ({ key, record }) {
  const value = Uint8Array.from(Buffer.from(record, 'base64'))
  const peers = []
  for await (const ev of libp2p.services.dht.put(routingKey(key), value, { signal: AbortSignal.timeout(TIMEOUT_MS) })) {
    if (ev.name === 'PEER_RESPONSE') peers.push(ev.from.toString())
  }
  return { peers }
}

const ops = { dial, pin, resolve, forge, put }
const peerId = libp2p.peerId.toString()
process.stdout.write(JSON.stringify({ peer_id: peerId, addrs: libp2p.getMultiaddrs().map((a) => a.toString()) }) + '\n')
for await (const line of createInterface({ input: process.stdin })) {
  let reply
  try {
    const cmd = JSON.parse(line)
    const op = ops[cmd.op]
    if (op == null) throw new Error(`unknown op ${cmd.op}`)
    reply = { ok: true, ...(await op(cmd)) }
  } catch (err) {
    reply = { ok: false, error: `${err.name}: ${err.message}` }
  }
  process.stdout.write(JSON.stringify(reply) + '\n')
}
await helia.stop()
await libp2p.stop()
process.exit(0)
