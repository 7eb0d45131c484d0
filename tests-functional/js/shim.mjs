// Loaded with `node --import ./shim.mjs ...`.
// Promise.withResolvers is native from Node 22; Helia/libp2p use it, so
// polyfill it on older runtimes (Node 20). No-op when already present.
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve
      let reject
      const promise = new this((res, rej) => { resolve = res; reject = rej })
      return { promise, resolve, reject }
    }
  })
}
