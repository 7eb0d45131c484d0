// How the test peers end: on SIGTERM, SIGINT or when stdin closes (the test, their parent,
// went away), they stop their libp2p node and exit.

export function stopOnExit (libp2p) {
  const stop = async () => {
    await libp2p.stop()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.on('end', stop)
  process.stdin.resume()
}
