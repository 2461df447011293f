"""Why the web server is plain asyncio and not aiohttp: the same load against both, one run.

Serves the same registry (8 GPUs x 150 series, gzip) from ``gpu_health.web.server.WebServer``
and from a minimal aiohttp app, and measures (1) one keep-alive scraper, (2) 200 keep-alive
scrapers at one scrape a second. Needs aiohttp, which the project does not depend on:
``pip install aiohttp`` into a scratch environment. Reports ratios aiohttp / ours.

    python bench/web_server_choice.py [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import json
import statistics
import sys
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import generate_latest

from gpu_health.web import server as ours


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    gauge = Gauge("probe_metric", "A probe.", ["gpu", "field"], registry=reg)
    for gpu in range(8):
        for f in range(150):
            gauge.labels(str(gpu), f"f{f}").set(gpu * f)
    return reg


def start_aiohttp(reg: CollectorRegistry) -> tuple[int, Any]:
    from aiohttp import web as aio

    async def metrics(_request: Any) -> Any:
        body = gzip.compress(generate_latest(reg), compresslevel=1)
        return aio.Response(body=body, headers={"Content-Encoding": "gzip"})

    loop = asyncio.new_event_loop()
    app = aio.Application()
    app.router.add_get("/metrics", metrics)
    runner = aio.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = aio.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)

    return port, stop


def one_scraper(port: int, n: int = 150) -> tuple[float, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        resp.read()
        times.append(time.perf_counter() - started)
    conn.close()
    times.sort()
    return statistics.median(times) * 1000, times[int(n * 0.99) - 1] * 1000


def many_scrapers(port: int, scrapers: int = 200, rounds: int = 10) -> tuple[int, int, float]:
    statuses: list[int] = []
    latencies: list[float] = []

    async def scraper(offset: float) -> None:
        await asyncio.sleep(offset)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(rounds):
                started = time.monotonic()
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                statuses.append(int(head.split(b" ")[1]))
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            statuses.append(0)
        finally:
            writer.close()

    async def run() -> None:
        await asyncio.gather(*(scraper(i / scrapers) for i in range(scrapers)))

    asyncio.run(run())
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("inf")
    return len(statuses), sum(s != 200 for s in statuses), p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    try:
        import aiohttp  # noqa: F401 - only checking it is there
    except ImportError:
        print(
            "aiohttp is not installed: pip install aiohttp (scratch environment)", file=sys.stderr
        )
        return 2
    reg = registry()
    server = ours.WebServer("127.0.0.1:0", {"/metrics": ours.metrics_handler(reg)}).start()
    aio_port, aio_stop = start_aiohttp(reg)
    results: dict[str, Any] = {}
    try:
        for name, port in (("ours", server.port), ("aiohttp", aio_port)):
            rounds = [one_scraper(port) for _ in range(3)]
            total, lost, p99 = many_scrapers(port)
            results[name] = {
                "one_scraper_p50_ms": [round(r[0], 2) for r in rounds],
                "one_scraper_p99_ms": [round(r[1], 2) for r in rounds],
                "scrapes_200x1s": total,
                "lost_200x1s": lost,
                "p99_200x1s_ms": round(p99, 1),
            }
            print(name, results[name])
    finally:
        server.shutdown()
        aio_stop()
    a, o = results["aiohttp"], results["ours"]
    ratio = statistics.median(a["one_scraper_p50_ms"]) / statistics.median(o["one_scraper_p50_ms"])
    print(f"one scraper p50 aiohttp / ours = {ratio:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
