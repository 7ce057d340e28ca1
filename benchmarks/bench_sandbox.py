"""Load test of the served sandbox: requests per second over loopback, limits off.

Starts ``mlrun sandbox serve --rate-limits off`` on a free port, then runs a bounded closed loop
of clients (``--processes`` processes x ``--concurrency`` keep-alive connections) mixing job
triggers (10%), job lists (10%) and job reads (80%), and prints the figure. ``--client raw``
(the default: minimal HTTP/1.1 over asyncio streams, one process) measures the server itself,
against the target of 1,500 requests/s; ``--client httpx`` measures what httpx, the runner's
HTTP stack, can drive (httpx saturates a core before the server does; for information). Exits 1
when the raw client's figure misses the target. Usage::

    python benchmarks/bench_sandbox.py                  # raw client, 1 process, 20,000 requests
    python benchmarks/bench_sandbox.py --client httpx --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import subprocess
import sys
import time

import anyio
import httpx
from runner.sandbox.serve import http_implementation

from served import machine

PROJECT = "fedcba98-7654-3210-fedc-ba9876543210"
HEADERS = {"x-api-key": "ml_live_bench", "x-project-id": PROJECT}
TRIGGER = {"aiModels": ["gpt-4.1-mini", "claude-haiku-4-5"], "executionCount": 1}
TARGET = 1500.0  # requests/s the server answers, limits off


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, deadline: float = 15.0) -> None:
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        try:
            httpx.get(f"{url}/_sandbox/health", timeout=0.5)
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return
    raise SystemExit("the sandbox did not start")


async def client_loop(url: str, requests: int, concurrency: int) -> int:
    """Send ``requests`` requests with ``concurrency`` tasks; return the number of 2xx."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    ok = 0
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, limits=limits) as client:
        first = await client.post("/api/jobs/trigger", json=TRIGGER)
        job_id = first.json()["id"]
        remaining = requests - 1

        async def worker() -> None:
            nonlocal remaining, ok
            while remaining > 0:
                remaining -= 1
                kind = remaining % 10
                if kind == 0:
                    response = await client.post("/api/jobs/trigger", json=TRIGGER)
                elif kind == 1:
                    response = await client.post("/api/jobs/list?limit=10", json={})
                else:
                    response = await client.get(f"/api/jobs/{job_id}")
                ok += response.is_success

        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
    return ok + 1


class RawConnection:
    """Just enough HTTP/1.1 keep-alive to measure the server, not the client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nhost: sandbox\r\n{RAW_HEADERS}"
        self.writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
        response = await self.reader.readuntil(b"\r\n\r\n")
        length = int(response.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        return int(response[9:12]), await self.reader.readexactly(length)


RAW_HEADERS = "".join(
    f"{k}: {v}\r\n" for k, v in {**HEADERS, "content-type": "application/json"}.items()
)


async def raw_loop(url: str, requests: int, concurrency: int) -> int:
    host, port = url.removeprefix("http://").split(":")
    trigger = json.dumps(TRIGGER).encode()
    ok, remaining = 0, requests

    async def worker() -> None:
        nonlocal ok, remaining
        connection = RawConnection(*await asyncio.open_connection(host, int(port)))
        _, body = await connection.request("POST", "/api/jobs/trigger", trigger)
        job_id = json.loads(body)["id"]
        while remaining > 0:
            remaining -= 1
            kind = remaining % 10
            if kind == 0:
                status, _ = await connection.request("POST", "/api/jobs/trigger", trigger)
            elif kind == 1:
                status, _ = await connection.request("POST", "/api/jobs/list?limit=10", b"{}")
            else:
                status, _ = await connection.request("GET", f"/api/jobs/{job_id}")
            ok += 200 <= status < 300
        connection.writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def run_client(client: str, url: str, requests: int, concurrency: int) -> int:
    if client == "raw":
        return asyncio.run(raw_loop(url, requests, concurrency))
    return anyio.run(client_loop, url, requests, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--client", choices=["httpx", "raw"], default="raw")
    args = parser.parse_args()
    print(f"# bench_sandbox: {machine()}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "runner", "sandbox", "serve", "--port", str(port)]
    command += ["--time-scale", "1"]  # real time: the figures in docs/performance.md are at 1
    server = subprocess.Popen([*command, "--rate-limits", "off"], stdout=subprocess.DEVNULL)
    try:
        wait_ready(url)
        per_process = args.requests // args.processes
        jobs = [(args.client, url, per_process, args.concurrency)] * args.processes
        started = time.perf_counter()
        with multiprocessing.Pool(args.processes) as pool:
            ok = sum(pool.starmap(run_client, jobs))
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=10)
    total = per_process * args.processes
    rate = total / elapsed
    print(f"{total} requests ({ok} 2xx) in {elapsed:.2f}s: {rate:,.0f} requests/s")
    clients = f"{args.processes} {args.client} client process(es) x {args.concurrency} connections"
    print(f"  {clients}, limits off, uvicorn {http_implementation()}")
    if args.client == "raw":
        verdict = "pass" if rate >= TARGET and ok == total else "MISS"
        print(f"target: the server >= {TARGET:,.0f} requests/s, every one 2xx: {verdict}")
        raise SystemExit(0 if verdict == "pass" else 1)


if __name__ == "__main__":
    main()
