"""Load the HTTP service with concurrent clients sending real photos, on loopback only.

Run: python benchmarks/load.py --bundle bundles/bts [--clients 8] [--duration-s 120]
  or: python benchmarks/load.py --url http://127.0.0.1:8000 --server-pid PID
With --bundle it starts `memberlens serve` itself on a free port of 127.0.0.1 and stops it at
the end. It prints throughput, latency percentiles, errors by status, and the server's resident
memory (RSS) at the start, during and at the end of the load.
"""

import argparse
import ipaddress
import logging
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO_ROOT.parent / "shared" / "datasets" / "bts-group-photos" / "images"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
REQUEST_TIMEOUT_S = 120.0
START_TIMEOUT_S = 180.0
RSS_SAMPLE_EVERY_S = 10.0
LOOPBACK_NAMES = {"localhost"}


@dataclass
class Outcome:
    """What the clients saw: one latency per answered request, and every status counted."""

    latencies_ms: list[float] = field(default_factory=list)
    service_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    photos_answered: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self,
        status: str,
        latency_ms: float | None,
        service_ms: float | None,
        *,
        photo_name: str | None = None,
    ) -> None:
        """Count one request; the times and the photo are kept for 200 answers only.

        `latency_ms` is what the client waited; `service_ms` is the server's own `total` timing
        of the pipeline, without the time spent waiting in the queue.
        """
        with self.lock:
            self.statuses[status] += 1
            if latency_ms is not None:
                self.latencies_ms.append(latency_ms)
            if service_ms is not None:
                self.service_ms.append(service_ms)
            if photo_name is not None:
                self.photos_answered.add(photo_name)


def main() -> int:
    """Parse the options, run the load and print the report."""
    args = _parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    photos = _read_photos(args.photos, args.max_photos)

    if args.bundle is not None:
        with _StartedServer(args.bundle, args.workers) as (url, pid):
            return _run(url, pid, photos, args)
    _require_loopback(args.url)
    return _run(args.url, args.server_pid, photos, args)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--bundle", type=Path, help="start `memberlens serve` on this bundle")
    target.add_argument("--url", help="a running server on loopback, e.g. http://127.0.0.1:8000")
    parser.add_argument("--server-pid", type=int, help="PID of the --url server, for its RSS")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of photos")
    parser.add_argument("--max-photos", type=int, default=0, help="use at most this many (0: all)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--duration-s", type=float, default=120.0, help="how long to send")
    parser.add_argument("--workers", type=int, default=1, help="inference workers of the server")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shared photo order")
    return parser.parse_args()


def _run(
    url: str, pid: int | None, photos: list[tuple[str, bytes]], args: argparse.Namespace
) -> int:
    outcome = Outcome()
    rss_samples: list[tuple[float, int | None]] = [(0.0, _rss_kib(pid))]
    stop_at = time.monotonic() + args.duration_s
    queue = _PhotoQueue(photos, args.seed)
    clients = [
        threading.Thread(target=_client, args=(url, queue, stop_at, outcome))
        for _ in range(args.clients)
    ]
    started = time.monotonic()
    for client in clients:
        client.start()
    while time.monotonic() < stop_at:
        time.sleep(min(RSS_SAMPLE_EVERY_S, max(0.0, stop_at - time.monotonic())))
        rss_samples.append((time.monotonic() - started, _rss_kib(pid)))
    for client in clients:
        client.join()
    elapsed_s = time.monotonic() - started
    rss_samples.append((elapsed_s, _rss_kib(pid)))

    _print_report(outcome, elapsed_s, rss_samples, args, len(photos))
    errors = sum(count for status, count in outcome.statuses.items() if status != "200")
    return 0 if errors == 0 else 1


class _PhotoQueue:
    """Hand the clients the photos in one shuffled order, all of them before any repeats."""

    def __init__(self, photos: list[tuple[str, bytes]], seed: int) -> None:
        self.photos = photos
        self.order = list(range(len(photos)))
        random.Random(seed).shuffle(self.order)
        self.turn = 0
        self.lock = threading.Lock()

    def next(self) -> tuple[str, bytes]:
        """Return the next photo of the shared order, starting over after the last one."""
        with self.lock:
            index = self.order[self.turn % len(self.order)]
            self.turn += 1
        return self.photos[index]


def _client(url: str, queue: _PhotoQueue, stop_at: float, outcome: Outcome) -> None:
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        while time.monotonic() < stop_at:
            name, photo = queue.next()
            started = time.perf_counter()
            try:
                response = client.post("/v1/identify", files={"image": (name, photo)})
            except httpx.HTTPError as err:
                outcome.record(type(err).__name__, None, None)
                continue
            latency_ms = (time.perf_counter() - started) * 1000
            if response.status_code == 200:
                service_ms = response.json()["timings_ms"].get("total")
                outcome.record("200", latency_ms, service_ms, photo_name=name)
            else:
                outcome.record(str(response.status_code), None, None)


def _print_report(
    outcome: Outcome,
    elapsed_s: float,
    rss_samples: list[tuple[float, int | None]],
    args: argparse.Namespace,
    n_photos: int,
) -> None:
    answered = len(outcome.latencies_ms)
    total = sum(outcome.statuses.values())
    errors = {status: count for status, count in outcome.statuses.items() if status != "200"}
    print(
        f"clients {args.clients}, duration {elapsed_s:.1f} s, photos {n_photos} sent in one "
        f"shuffled order, cycled; {len(outcome.photos_answered)} distinct photos answered"
    )
    print(f"requests {total}, ok {answered}, errors {sum(errors.values())} {errors or ''}")
    print(f"throughput {answered / elapsed_s:.2f} photos/s")
    if answered:
        cuts = statistics.quantiles(outcome.latencies_ms, n=100, method="inclusive")
        print(
            f"latency ms: p50 {cuts[49]:.0f}, p95 {cuts[94]:.0f}, p99 {cuts[98]:.0f}, "
            f"max {max(outcome.latencies_ms):.0f}"
        )
    if len(outcome.service_ms) >= 2:
        cuts = statistics.quantiles(outcome.service_ms, n=100, method="inclusive")
        print(
            f"pipeline time per photo ms (server's own, no queueing): p50 {cuts[49]:.0f}, "
            f"p95 {cuts[94]:.0f}, max {max(outcome.service_ms):.0f}"
        )
    known = [(at, kib) for at, kib in rss_samples if kib is not None]
    if known:
        start_mib, end_mib = known[0][1] / 1024, known[-1][1] / 1024
        peak_mib = max(kib for _, kib in known) / 1024
        # The first requests grow the allocator's pools; flat memory means no growth after that.
        settled_mib = next((kib for at, kib in known if at >= elapsed_s / 4), known[-1][1]) / 1024
        print(
            f"server RSS MiB: start {start_mib:.0f}, end {end_mib:.0f}, peak {peak_mib:.0f}, "
            f"change {end_mib - start_mib:+.0f}, change after the first quarter "
            f"{end_mib - settled_mib:+.0f}"
        )
        print(
            "server RSS MiB over time: "
            + ", ".join(f"{at:.0f}s={kib / 1024:.0f}" for at, kib in known)
        )
    else:
        print("server RSS: unknown (pass --server-pid, or --bundle to start the server)")


class _StartedServer:
    """Run `memberlens serve` on a free loopback port; stop it with SIGTERM on exit."""

    def __init__(self, bundle: Path, workers: int) -> None:
        self.bundle = bundle
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> tuple[str, int]:
        port = _free_port()
        env = {
            **os.environ,
            "MEMBERLENS_HOST": "127.0.0.1",
            "MEMBERLENS_PORT": str(port),
            "MEMBERLENS_LOG_FORMAT": "json",
            "MEMBERLENS_CONCURRENCY__WORKERS": str(self.workers),
        }
        command = [sys.executable, "-m", "service.cli", "serve", "--bundle", str(self.bundle)]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_ready(url, self.process)
        except BaseException:
            self.__exit__()
            raise
        logger.info("server ready", extra={"url": url, "pid": self.process.pid})
        return url, self.process.pid

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=60)


def _wait_until_ready(url: str, process: "subprocess.Popen[bytes]") -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode} while starting")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    try:
        reason = httpx.get(url + "/readyz", timeout=2).json().get("reason")
    except (httpx.HTTPError, ValueError):
        reason = "no answer"
    raise SystemExit(f"the server was not ready within {START_TIMEOUT_S:.0f} s: {reason}")


def _read_photos(folder: Path, max_photos: int) -> list[tuple[str, bytes]]:
    paths = sorted(path for path in folder.iterdir() if path.suffix.lower() in PHOTO_SUFFIXES)
    if max_photos > 0:
        paths = paths[:max_photos]
    if not paths:
        raise SystemExit(f"no photos in {folder}")
    return [(path.name, path.read_bytes()) for path in paths]


def _require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    is_loopback = host in LOOPBACK_NAMES
    if not is_loopback:
        try:
            is_loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_loopback = False
    if not is_loopback:
        raise SystemExit(f"load is only sent to loopback addresses, not to {host!r}")


def _rss_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


if __name__ == "__main__":
    sys.exit(main())
