"""Benchmark: concurrent clinicians uploading and predicting against a running workstation.

Starts ``meddx serve`` (SQLite, a 28 px PneumoniaMNIST model) on 127.0.0.1, creates a clinician
account, then:

1. **serial**: one client, 30 uploads one after another (the service time without queueing).
2. **load**: ``--clients`` concurrent clients (threads, one HTTP connection each) each upload
   ``--requests`` real 28 px PneumoniaMNIST test images; every upload is stored and predicted
   (``explain=false``: the heat map is for the viewer, not this path) and then reviewed
   (feedback). Reports throughput, p50/p95/p99 latency of upload+predict and of feedback, errors.
3. **think time** (the realistic scenario): ``--clients`` clients that each pause a random
   0.5-1.5 s (``--think``) before every upload and every review, like people reading a finding;
   phase 2 has no pause at all and measures saturation (closed loop: every client sends its
   next request the moment the last one is answered).
4. **restart**: the saturation load while the server is killed (SIGKILL of its whole process
   group, the worst case) and started again mid-way; clients retry what failed while it was
   down. Afterwards every feedback the server acknowledged (HTTP 201) must be in the database:
   *no committed feedback is lost*.

The clients stand for clinicians' browsers on other machines, but here they run on the same
cores as the server: every CPU millisecond a client spends is one the server does not get, so the
closed-loop figures are for client and server sharing the CPU. The clients are kept lean for that
reason (stdlib ``http.client`` on one keep-alive connection each, the multipart body built as
bytes; httpx cost about 1.7 ms of CPU per request, a sixth of what the server needs), and the
CPU seconds of server and clients per upload+review are reported beside the latencies.

The database is a SQLite file in the run's folder, or ``--database-url`` (an empty PostgreSQL
database, e.g. ``postgresql+psycopg://meddx@127.0.0.1:5432/bench``; its server's CPU is not in
the server CPU column, but it runs on the same cores).

Bounded (fixed request counts, timeouts everywhere); stops by itself. Prints a table and writes
``benchmarks/results/workstation_load.json`` (``--out``).

    python benchmarks/workstation_load.py [--clients 16] [--requests 25] [--workers 2]
        [--database-url URL] [--out FILE]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
PASSWORD = "load-test-password-1"
# Wide enough for the table when the output goes to a file or a pipe (rich assumes 80 there).
console = Console(width=None if sys.stdout.isatty() else 160)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_bundle(path: Path | None) -> Path:
    """The bundle to serve: the given one, else the demo's, else a small one trained now."""
    import meddx
    from meddx.decision.bundle import METADATA_FILE

    for candidate in (path, Path("runs/demo/pneumoniamnist"),
                      Path("runs/bench/workstation-pneumoniamnist")):
        if candidate is not None and (candidate / METADATA_FILE).exists():
            return candidate
    out = Path("runs/bench/workstation-pneumoniamnist")
    console.print(f"training a small PneumoniaMNIST model for the benchmark into {out}")
    meddx.train("pneumoniamnist", out, epochs=3, time_budget_min=2.0, progress=False)
    return out


def test_images(n: int) -> list[bytes]:
    from meddx.data.loading import load_dataset

    split = load_dataset("pneumoniamnist").split("test")
    images = []
    for image in split.images[:n]:
        buffer = io.BytesIO()
        Image.fromarray(np.clip(image[0], 0, 255).astype(np.uint8)).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


class Server:
    """``meddx serve`` in a subprocess."""

    def __init__(self, root: Path, bundle: Path, port: int, workers: int = 1,
                 database_url: str | None = None):
        self.env = {**os.environ, "MEDDX_WORKSTATION_DIR": str(root),
                    "MEDDX_SECRET_KEY": _key(), "MEDDX_BUNDLES": str(bundle.resolve()),
                    "MEDDX_WORKERS": str(workers)}
        self.env.pop("MEDDX_DATABASE_URL", None)
        if database_url:
            self.env["MEDDX_DATABASE_URL"] = database_url
        self.database_url = database_url or f"sqlite:///{root / 'workstation.db'}"
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.root = root
        self.process = None

    def create_user(self) -> None:
        subprocess.run([sys.executable, "-m", "meddx", "users", "create", "bench", "--role",
                        "clinician", "--password-stdin"], input=PASSWORD + "\n", env=self.env,
                       check=True, capture_output=True, text=True, timeout=300)

    def start(self, timeout: float = 180) -> float:
        begin = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "meddx", "serve", "--port", str(self.port)], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while time.monotonic() - begin < timeout:
            if self.process.poll() is not None:
                raise RuntimeError("the server exited during start-up")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return time.monotonic() - begin
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not up within {timeout} s")

    def kill(self) -> None:
        # The whole group: with --workers the worker processes die with the server.
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        time.sleep(0.5)  # orphaned workers, if any, finish dying before the port is reused

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def _key() -> str:
    from meddx.safeguards.encryption import generate_key

    return generate_key()


def token(url: str) -> str:
    answer = httpx.post(f"{url}/api/auth/token", data={"username": "bench",
                                                       "password": PASSWORD}, timeout=30)
    answer.raise_for_status()
    return answer.json()["access_token"]


def multipart(fields: dict[str, str], filename: str, content: bytes,
              content_type: str) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with ``fields`` and one file ``files``, and its type."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n".encode() for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                 f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
                 + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Client(threading.Thread):
    """One clinician: upload -> prediction -> review, ``n`` times; retries while the server is
    down when ``retry`` is set (restart phase).

    One keep-alive HTTP/1.1 connection (``http.client``), reopened after a transport error.
    """

    def __init__(self, url: str, bearer: str, images: list[bytes], n: int, offset: int,
                 retry: bool = False, deadline: float = 600,
                 think_s: tuple[float, float] | None = None):
        super().__init__(daemon=True)
        self.url, self.images, self.n, self.offset, self.retry = url, images, n, offset, retry
        address = urlsplit(url)
        self.host, self.port = address.hostname, address.port
        self.connection: http.client.HTTPConnection | None = None
        self.headers = {"Authorization": f"Bearer {bearer}"}
        self.deadline = time.monotonic() + deadline
        self.upload_ms: list[float] = []
        self.feedback_ms: list[float] = []
        self.errors: list[str] = []
        self.retried = 0
        self.acknowledged: list[dict] = []
        self.think_s = think_s
        self.rng = random.Random(offset)

    def _think(self) -> None:
        if self.think_s is not None:
            time.sleep(self.rng.uniform(*self.think_s))

    def _call(self, method: str, path: str, body: bytes,
              content_type: str) -> tuple[float, dict] | None:
        """(milliseconds, JSON answer) of one request, or None after recording the error."""
        headers = {**self.headers, "Content-Type": content_type}
        while time.monotonic() < self.deadline:
            start = time.perf_counter()
            try:
                if self.connection is None:
                    self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.connection.request(method, path, body=body, headers=headers)
                answer = self.connection.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException) as error:
                self.connection.close()
                self.connection = None
                if not self.retry:
                    self.errors.append(f"{method} {path}: {type(error).__name__}")
                    return None
                self.retried += 1
                time.sleep(0.2)
                continue
            elapsed = (time.perf_counter() - start) * 1000
            if answer.status >= 400:
                self.errors.append(f"{method} {path}: {answer.status} {data[:120]!r}")
                return None
            return elapsed, json.loads(data)
        self.errors.append(f"{method} {path}: gave up at the deadline")
        return None

    def run(self) -> None:
        try:
            self._run()
        finally:
            if self.connection is not None:
                self.connection.close()

    def _run(self) -> None:
        for i in range(self.n):
            image = self.images[(self.offset + i) % len(self.images)]
            self._think()
            body, content_type = multipart({"explain": "false"}, f"case-{self.offset}-{i}.png",
                                           image, "image/png")
            study = self._call("POST", "/api/studies", body, content_type)
            if study is None:
                continue
            elapsed, answer = study
            self.upload_ms.append(elapsed)
            prediction = answer["predictions"][0]
            comment = f"bench review {self.offset}-{i}"
            self._think()
            review = self._call("POST", f"/api/studies/{answer['id']}/feedback", json.dumps({
                "prediction_id": prediction["id"], "agrees": True, "comment": comment}).encode(),
                "application/json")
            if review is None:
                continue
            elapsed, answer = review
            self.feedback_ms.append(elapsed)
            self.acknowledged.append({"id": answer["id"], "comment": comment})


def group_cpu_s(pgid: int) -> float | None:
    """CPU seconds (user + system) so far of the live processes of group ``pgid`` (Linux)."""
    if not Path("/proc").is_dir():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "mean": None}
    ordered = np.asarray(values)
    return {"p50": float(np.percentile(ordered, 50)), "p95": float(np.percentile(ordered, 95)),
            "p99": float(np.percentile(ordered, 99)), "mean": float(statistics.fmean(values))}


def run_load(server: Server, images: list[bytes], clients: int, requests: int,
             restart_after_s: float | None = None,
             think_s: tuple[float, float] | None = None) -> dict:
    bearer = token(server.url)
    workers = [Client(server.url, bearer, images, requests, offset=k * requests,
                      retry=restart_after_s is not None, think_s=think_s)
               for k in range(clients)]
    # 1-minute load average as the phase starts: other jobs, plus what is left of the previous
    # phase's load (it decays over about a minute).
    load_before = os.getloadavg()[0]
    server_cpu, client_cpu = group_cpu_s(server.process.pid), own_cpu_s()
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    restart = None
    if restart_after_s is not None:
        time.sleep(restart_after_s)
        acknowledged_before = sum(len(w.acknowledged) for w in workers)
        server.kill()
        down = time.perf_counter()
        startup_s = server.start()
        restart = {"killed_after_s": round(down - start, 2), "startup_s": round(startup_s, 2),
                   "feedback_acknowledged_before_kill": acknowledged_before}
    for worker in workers:
        worker.join(timeout=900)
    wall = time.perf_counter() - start
    client_cpu = own_cpu_s() - client_cpu
    server_now = group_cpu_s(server.process.pid)
    # Not across a restart: the killed processes' CPU is gone from /proc.
    server_cpu = (server_now - server_cpu if None not in (server_now, server_cpu)
                  and restart_after_s is None else None)
    uploads = [ms for w in workers for ms in w.upload_ms]
    reviews = [ms for w in workers for ms in w.feedback_ms]
    errors = [e for w in workers for e in w.errors]
    result = {"clients": clients, "requests_per_client": requests,
              "load_average_before": round(load_before, 2),
              "think_s": list(think_s) if think_s else None, "wall_s": round(wall, 2),
              "uploads_ok": len(uploads), "feedback_ok": len(reviews), "errors": len(errors),
              "error_samples": errors[:5],
              "throughput_uploads_per_s": round(len(uploads) / wall, 2),
              "throughput_requests_per_s": round((len(uploads) + len(reviews)) / wall, 2),
              "upload_predict_ms": percentiles(uploads), "feedback_ms": percentiles(reviews),
              "retried_while_down": sum(w.retried for w in workers),
              # Per upload + its review, of the server's processes and of this client process.
              "server_cpu_ms_per_pair": (round(server_cpu / len(uploads) * 1000, 2)
                                         if server_cpu is not None and uploads else None),
              "client_cpu_ms_per_pair": (round(client_cpu / len(uploads) * 1000, 2)
                                         if uploads else None)}
    if restart is not None:
        acknowledged = [a for w in workers for a in w.acknowledged]
        engine = create_engine(server.database_url)
        with engine.connect() as connection:
            stored = dict(connection.execute(text("SELECT id, comment FROM feedback")).all())
        engine.dispose()
        lost = [a for a in acknowledged if stored.get(a["id"]) != a["comment"]]
        restart.update({"feedback_acknowledged": len(acknowledged),
                        "feedback_in_database": len(stored), "feedback_lost": len(lost)})
        result["restart"] = restart
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=25, help="uploads per client")
    parser.add_argument("--restart-requests", type=int, default=10,
                        help="uploads per client in the restart phase")
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=2,
                        help="server processes (meddx serve --workers)")
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 1.5),
                        metavar=("MIN_S", "MAX_S"),
                        help="pause before each action in the think-time phase")
    parser.add_argument("--think-requests", type=int, default=10,
                        help="uploads per client in the think-time phase")
    parser.add_argument("--database-url", default=None,
                        help="an empty database for the server (default: a SQLite file)")
    parser.add_argument("--out", type=Path, default=RESULTS / "workstation_load.json")
    args = parser.parse_args()

    bundle = demo_bundle(args.bundle)
    images = test_images(200)
    with tempfile.TemporaryDirectory(prefix="meddx-bench-") as scratch:
        server = Server(Path(scratch) / "ws", bundle, free_port(), args.workers,
                        args.database_url)
        server.create_user()
        server.start()
        try:
            warm = run_load(server, images, 2, 3)  # model load, first-call costs
            serial = run_load(server, images, 1, 30)  # one clinician: the service time
            load = run_load(server, images, args.clients, args.requests)
            think = run_load(server, images, args.clients, args.think_requests,
                             think_s=tuple(args.think))
            restart = run_load(server, images, args.clients, args.restart_requests,
                               restart_after_s=max(2.0, load["wall_s"] / args.requests
                                                   * args.restart_requests / 3))
        finally:
            server.stop()

    target = {"clients": 16, "p95_ms": 100, "errors": 0, "lost_feedback": 0}
    for phase in (load, think, restart):
        # The target: its number of clients, p95 of upload+predict, no errors, no
        # acknowledged review lost (a phase without one answered upload meets nothing).
        p95 = phase["upload_predict_ms"]["p95"]
        phase["meets_target"] = (phase["clients"] >= target["clients"]
                                 and p95 is not None and p95 <= target["p95_ms"]
                                 and phase["errors"] == 0
                                 and phase.get("restart", {}).get("feedback_lost", 0) == 0)
    report = {"bundle": str(bundle), "cpu_count": os.cpu_count(), "workers": args.workers,
              "database": make_url(server.database_url).get_backend_name(),
              "load_average_at_end": os.getloadavg()[0], "image": "PneumoniaMNIST test, 28 px PNG",
              "target": target,
              "scenarios": {
                  "serial": "1 client, no pause: the service time",
                  "load": f"{args.clients} clients, closed loop, no think time: saturation",
                  "think": f"{args.clients} clients, {args.think[0]}-{args.think[1]} s think "
                           "time before each action: realistic use",
                  "restart": f"{args.clients} clients, closed loop, server SIGKILLed mid-way"},
              "warmup": warm, "serial": serial, "load": load, "think": think,
              "restart": restart}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".tmp")
    temporary.write_text(json.dumps(report, indent=2))
    os.replace(temporary, args.out)

    table = Table(title=f"workstation load: {args.clients} clients, 28 px prediction, "
                        f"{args.workers} worker(s), {report['database']} ({os.cpu_count()} "
                        "CPUs, load avg "
                        f"{report['load_average_at_end']:.1f})")
    for column in ("phase", "uploads", "req/s", "upload+predict p50/p95/p99 ms",
                   "feedback p95 ms", "CPU ms/pair server + client", "load avg at start", "errors",
                   "lost feedback", "target met"):
        table.add_column(column)
    for name, phase in (("1 client", serial), (f"{args.clients} closed loop (saturation)", load),
                        (f"{args.clients} think {args.think[0]}-{args.think[1]} s", think),
                        ("restart (closed loop)", restart)):
        up = phase["upload_predict_ms"]
        table.add_row(name, str(phase["uploads_ok"]), f"{phase['throughput_requests_per_s']:.1f}",
                      f"{up['p50']:.0f} / {up['p95']:.0f} / {up['p99']:.0f}",
                      f"{phase['feedback_ms']['p95']:.0f}",
                      f"{phase['server_cpu_ms_per_pair'] or float('nan'):.1f} + "
                      f"{phase['client_cpu_ms_per_pair'] or float('nan'):.1f}",
                      f"{phase['load_average_before']:.1f}", str(phase["errors"]),
                      str(phase.get("restart", {}).get("feedback_lost", "-")),
                      {True: "yes", False: "no"}.get(phase.get("meets_target"), "-"))
    console.print(table)
    if "restart" in restart:
        r = restart["restart"]
        console.print(f"restart: killed after {r['killed_after_s']} s, back in {r['startup_s']} s; "
                      f"{r['feedback_acknowledged']} reviews acknowledged, "
                      f"{r['feedback_in_database']} in the database, {r['feedback_lost']} lost")
    console.print(f"json: {args.out}")


if __name__ == "__main__":
    main()
