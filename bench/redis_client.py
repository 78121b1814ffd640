"""What the gateway's Redis calls cost in one process, by the way they go out.

``python -m bench.redis_client --client redis-py|batched --url redis://... [--requests N]
[--concurrency C] [--tags T]`` makes the two calls every cached request makes (a rate-limit
``TAKE`` script, then the cache ``LOOKUP`` script, through ``gateway.ratelimit.buckets``
and ``gateway.cache.store``) for N requests, C at a time, each on its own page over a
spread of tags, and prints requests per second. Time the whole process from outside
(``/usr/bin/time -v``: user + system seconds) and alternate the clients, A B A B: on a
shared machine one run alone says little. ``docs/design/redis-client.md`` has the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from gateway.cache.store import RedisStore
from gateway.ratelimit.buckets import Backoff, Spend, Store
from gateway.redis_client import commands, connect
from gateway.settings import Settings


async def main(args: argparse.Namespace) -> None:
    settings = Settings(redis_url=args.url, redis_client=args.client)
    client = connect(settings)
    assert client is not None
    calls = commands(client, settings)
    run = f"bench:{uuid.uuid4().hex[:8]}:"
    cache = RedisStore(calls, run + "c:", retry_seconds=1.0)
    limits = Store(calls, run + "rl:", Backoff(5, 60, 1, 60))
    queue = iter(range(args.requests))

    async def worker() -> None:
        for n in queue:
            spends = [Spend(f"ip:{n % 50}", 10**9, 10**6, 1)]
            ok, _ = await limits.take(spends)
            assert ok
            tags = [f"product:{n % 1000}", f"category:{n % args.tags}"]
            await cache.lookup(f"{run}c:r:page:{n % 1000}:", tags)

    try:
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        took = time.perf_counter() - began
        print(f"{args.client}: {args.requests / took:,.0f} requests/s")
    finally:  # an interrupted run leaves no keys either
        async for key in client.scan_iter(match=run + "*", count=1000):
            await client.delete(key)
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=["batched", "redis-py"], default="batched")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tags", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
