#!/usr/bin/env python3
"""sse_clients.py: N SSE clients of wsctl-sse in one asyncio loop.

Usage: sse_clients.py URL N EXPECT TIMEOUT
Opens N connections to URL (a wsctl-sse stream with its token), waits until
each has received EXPECT events (or TIMEOUT seconds), and prints one JSON
line: clients, events delivered, and the latency from each event's "at"
(when its transaction wrote it) to its arrival on every 20th client,
p50/p99/max in ms.
"""
import asyncio
import datetime
import json
import sys
import urllib.parse


async def client(url, expect, latencies, counts, ready, idx, timed):
    u = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    path = u.path + ("?" + u.query if u.query else "")
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {u.hostname}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    got = 0
    while got < expect:
        line = await reader.readline()
        if not line:
            break
        if line.startswith(b": connected"):
            ready.release()
        if line.startswith(b"data: "):
            if timed:
                now = datetime.datetime.now(datetime.timezone.utc)
                data = json.loads(line[6:])
                at = datetime.datetime.fromisoformat(data["at"].replace("Z", "+00:00"))
                latencies.append((now - at).total_seconds() * 1000)
            got += 1
    counts[idx] = got
    writer.close()


async def main():
    url, n, expect, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    latencies, counts = [], [0] * n
    ready = asyncio.Semaphore(0)
    # Latency is taken on every 20th client only: parsing every event on
    # every client would make this process, not the relay, the bottleneck.
    tasks = [asyncio.create_task(client(url, expect, latencies, counts, ready, i, i % 20 == 0))
             for i in range(n)]
    for _ in range(n):
        await asyncio.wait_for(ready.acquire(), timeout)
    print("READY", flush=True)
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    latencies.sort()
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else None
    print(json.dumps({"clients": n, "complete": sum(1 for c in counts if c >= expect),
                      "events": sum(counts), "p50_ms": pick(0.5), "p99_ms": pick(0.99),
                      "max_ms": round(latencies[-1], 1) if latencies else None}), flush=True)

asyncio.run(main())
