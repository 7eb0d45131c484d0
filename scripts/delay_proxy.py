"""A TCP forwarder that holds every chunk for half a round trip each way: a long fat pipe on
loopback (the kernel here has no netem). Used by scripts/bench_wan.py.

    python3 scripts/delay_proxy.py LISTEN_PORT TARGET_HOST TARGET_PORT RTT_MS

Prints `ready` once listening. At most IN_FLIGHT bytes wait in each direction (like a link's
buffer); reading pauses beyond that.
"""

import asyncio
import sys
import time

IN_FLIGHT = 64 * 1024 * 1024
CHUNK = 256 * 1024


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float):
    queue: asyncio.Queue = asyncio.Queue()
    held = 0
    room = asyncio.Event()
    room.set()

    async def deliver():
        nonlocal held
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
            held -= len(data)
            if held < IN_FLIGHT:
                room.set()
        writer.close()

    task = asyncio.create_task(deliver())
    try:
        while True:
            await room.wait()
            data = await reader.read(CHUNK)
            if not data:
                break
            held += len(data)
            if held >= IN_FLIGHT:
                room.clear()
            queue.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((0, None))
    try:
        await task
    except (ConnectionError, OSError):
        pass


async def main():
    port, host, target, rtt_ms = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    delay = rtt_ms / 2000

    async def handle(r, w):
        try:
            tr, tw = await asyncio.open_connection(host, target)
        except OSError:
            w.close()
            return
        await asyncio.gather(pump(r, tw, delay), pump(tr, w, delay))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
