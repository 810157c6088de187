"""A loopback TCP server for the relay benchmark: each 4-byte big-endian request N is answered
with N bytes. N=1 measures round trips, N=4 MiB measures throughput.

    python bench/tcp_source.py PORT
"""

from __future__ import annotations

import asyncio
import struct
import sys

BLOCK = bytes(1 << 20)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            (n,) = struct.unpack(">I", await reader.readexactly(4))
            while n > 0:
                chunk = BLOCK[: min(n, len(BLOCK))]
                writer.write(chunk)
                n -= len(chunk)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
