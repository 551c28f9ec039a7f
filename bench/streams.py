"""Live streams beside reads: status reads while many live-stream clients never read, the
server's memory with them, and the CPU time idle streams cost.

A real `sanctions serve` process on a fresh SQLite file (or `--database-url`), a log of
`--events` events; then, in each run:

1. the baseline: `--reads` status reads one after another, no stream open;
2. `--streams` clients ask for the live stream from position 0 and never read (raw
   sockets); after `--settle` seconds, the same reads again, and the server's resident
   memory (VmRSS) against the baseline's;
3. those clients hang up; as many streams open caught up (idle) and the server's CPU time
   over `--idle-seconds` is read from /proc.

`--root` runs another checkout's code (a `git worktree` of an older commit) for a before
and after. Prints one line per run and the medians.

    python bench/streams.py --runs 3
    python bench/streams.py --runs 3 --root /tmp/before
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
COUNTRIES = ["BY", "RU", "IR", "VE", "KP", "SY", "CU", "MM", "AF", "ZW", "NI", "ML"]
COUNTRIES += ["SD", "SS", "LY", "YE", "SO", "CF", "CD", "IQ", "LB", "ER", "GN", "HT"]
AUTHORITIES = ["US", "EU", "GB", "CA", "UN", "JP", "AU", "CH", "NO", "NZ", "KR", "SG"]
AUTHORITIES += ["FR", "DE", "IT", "ES", "NL", "BE", "PL", "SE", "FI", "DK", "IE", "AT"]
WRITER = {"Authorization": "Bearer writer-token"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def record(base: str, count: int) -> int:
    commodities = [c["slug"] for c in httpx.get(f"{base}/v1/commodities").json()["commodities"]]
    keys = [(a, c, m) for a in AUTHORITIES for c in COUNTRIES for m in commodities][:count]
    if len(keys) < count:
        raise SystemExit(f"at most {len(keys)} events")
    last = 0
    for start in range(0, count, 1000):
        batch = [
            {"type": "imposed", "authority": a, "country": c, "commodity": m,
             "effective_date": "2021-08-09", "measures": ["import_ban"]}
            for a, c, m in keys[start : start + 1000]
        ]  # fmt: skip
        answer = httpx.post(
            f"{base}/v1/events:batch", json={"events": batch}, headers=WRITER, timeout=300
        )
        answer.raise_for_status()
        last = max(e["position"] for e in answer.json()["events"])
    return last


def status_reads(base: str, count: int) -> float:
    """The median seconds of `count` status reads, one after another."""
    took = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for n in range(count):
            started = time.perf_counter()
            answer = client.get("/v1/status", params={"country": COUNTRIES[n % len(COUNTRIES)]})
            took.append(time.perf_counter() - started)
            answer.raise_for_status()
    return statistics.median(took)


def open_stream(port: int, after: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /v1/events/stream?after=%d HTTP/1.1\r\nHost: x\r\n\r\n" % after)
    return sock


def one_run(args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "SANCTIONS_DATABASE_URL": args.database_url or f"sqlite:///{folder}/bench.db",
            "SANCTIONS_API_TOKENS": "wendy:writer:writer-token",
            "SANCTIONS_MAX_STREAMS": str(args.streams + 10),
            "PYTHONPATH": str(args.root),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            cwd=args.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
            last = record(base, args.events)
            while httpx.get(f"{base}/readyz", timeout=10).json().get("projection_lag_events"):
                time.sleep(0.2)  # the read models caught up before anything is measured
            status_reads(base, 10)  # warm
            result = {"baseline_p50_ms": status_reads(base, args.reads) * 1000}
            memory = rss_mib(server.pid)
            slow = [open_stream(port, 0) for _ in range(args.streams)]
            time.sleep(args.settle)
            result["with_streams_p50_ms"] = status_reads(base, args.reads) * 1000
            result["rss_growth_mib"] = rss_mib(server.pid) - memory
            for sock in slow:
                sock.close()
            time.sleep(2)
            idle = [open_stream(port, last) for _ in range(args.streams)]
            time.sleep(2)
            spent = cpu_seconds(server.pid)
            time.sleep(args.idle_seconds)
            result["idle_cpu_share"] = (cpu_seconds(server.pid) - spent) / args.idle_seconds
            for sock in idle:
                sock.close()
            return result
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=15000)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--reads", type=int, default=30)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    runs = []
    for number in range(args.runs):
        result = one_run(args)
        runs.append(result)
        print(f"run {number + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()))
    print(
        "median: " + ", ".join(f"{k} {statistics.median(r[k] for r in runs):.2f}" for k in runs[0])
    )


if __name__ == "__main__":
    main()
