"""GET /status/<id> requests per second under concurrent load, against Flask's hello world under
the same WSGI server (waitress) and settings (threads), each in its own process on loopback.

    python bench/status_rps.py [--seconds 5] [--procs 2] [--conns 4] [--threads 8] [--rounds 2]

Load: ``--procs`` processes × ``--conns`` threads, each a keep-alive ``http.client`` connection
sending requests back to back for ``--seconds`` (after one second of warm-up); every answer must
be 200. The servers are measured in alternation, ``--rounds`` times each, and the median taken,
since two cores shared by servers and load generator make single runs noisy. Two status reads:
a running job (its download held open by a throttled media route: two store reads, job and work)
and a completed one (one read, the full document with transcript and segments).
"""
from __future__ import annotations

import argparse
import http.client
import multiprocessing
import statistics
import sys
import threading
import time
from pathlib import Path

from common import AUTH, Client, MediaServer, Server, emulator, fixtures_dir, free_port, table, tempdir, transcribe_once


def _connection_loop(port: int, path: str, headers: dict[str, str], stop_at: float, counts: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    done = 0
    try:
        while time.perf_counter() < stop_at:
            conn.request("GET", path, headers=headers)
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"GET {path} answered {answer.status}")
            done += 1
        counts.append(done)
    finally:
        conn.close()


def _load_process(port: int, path: str, headers: dict[str, str], conns: int, start_at: float, seconds: float, out) -> None:  # type: ignore[no-untyped-def]
    while time.time() < start_at:
        time.sleep(0.001)
    stop_at = time.perf_counter() + seconds
    counts: list[int] = []
    threads = [threading.Thread(target=_connection_loop, args=(port, path, headers, stop_at, counts)) for _ in range(conns)]
    [t.start() for t in threads]
    [t.join(seconds + 30) for t in threads]
    out.put(sum(counts) if len(counts) == conns else -1)


def load(port: int, path: str, headers: dict[str, str], procs: int, conns: int, seconds: float) -> float:
    """Requests per second over ``seconds``, after a one-second warm-up at the same load."""
    ctx = multiprocessing.get_context("spawn")
    rates = []
    for duration in (1.0, seconds):
        out = ctx.Queue()
        start_at = time.time() + 1.0  # all processes start together, after spawning
        workers = [ctx.Process(target=_load_process, args=(port, path, headers, conns, start_at, duration, out))
                   for _ in range(procs)]
        [w.start() for w in workers]
        totals = [out.get(timeout=duration + 60) for _ in workers]
        [w.join(30) for w in workers]
        if min(totals) < 0:
            raise RuntimeError(f"a load connection failed on {path}")
        rates.append(sum(totals) / duration)
    return rates[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2, help="load generator processes")
    parser.add_argument("--conns", type=int, default=4, help="keep-alive connections per process")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads of both servers")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    run = lambda port, path, headers: load(port, path, headers, args.procs, args.conns, args.seconds)  # noqa: E731

    with tempdir("ttt-rps-") as tmp, MediaServer() as media:
        work = Path(tmp)
        port = free_port()
        hello = Server([sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", f"--threads={args.threads}",
                        "bench.hello:app"], {"PATH": "/usr/bin:/bin", "PYTHONPATH": "."}, port, work / "hello.log")
        try:
            with emulator(work, threads=args.threads) as svc:
                hello.wait_up("/")
                client = Client(svc.base)
                _, done = transcribe_once(client, media.add_clip("c.m4a", fixtures_dir() / "asterisk-en/agent-user.wav"))
                # ~8 bytes/s: the download stays open for as long as this benchmark runs.
                slow = media.add_clip("slow.m4a", fixtures_dir() / "asterisk-en/agent-alreadyon.wav", bytes_per_second=8)
                running = client.call("POST", "/transcribe", {"url": slow})[1]
                paths = {"running": f"/status/{running['id']}", "completed": f"/status/{done['id']}"}
                sizes = {}
                for name, path in paths.items():
                    client.conn.request("GET", path, headers=AUTH)
                    sizes[name] = len(client.conn.getresponse().read())
                assert client.call("GET", paths["running"])[1]["status"] != "completed"
                rates: dict[str, list[float]] = {"hello": [], "running": [], "completed": []}
                for _ in range(args.rounds):
                    rates["hello"].append(run(port, "/", {}))
                    for name, path in paths.items():
                        rates[name].append(run(svc.port, path, AUTH))
                still_running = client.call("GET", paths["running"])[1]["status"] != "completed"
        finally:
            hello.stop()
    med = {name: statistics.median(values) for name, values in rates.items()}
    print(f"load: {args.procs} processes x {args.conns} keep-alive connections, {args.seconds:g} s per run, "
          f"{args.rounds} runs each (alternating), median; waitress threads={args.threads}\n")
    print(table(["server", "requests/s (median)", "runs", "÷ hello world"], [
        ["Flask hello world (waitress)", round(med["hello"]), [round(r) for r in rates["hello"]], "1.00"],
        [f"GET /status/:id, running job ({sizes['running']} B)", round(med["running"]),
         [round(r) for r in rates["running"]], f"{med['running'] / med['hello']:.2f}"],
        [f"GET /status/:id, completed job ({sizes['completed']} B)", round(med["completed"]),
         [round(r) for r in rates["completed"]], f"{med['completed'] / med['hello']:.2f}"],
    ]))
    print(f"\n(the running job was still running at the end: {still_running})")


if __name__ == "__main__":
    main()
