"""The service as deployed: a `cds-service serve` subprocess (gunicorn, its default workers) on
loopback, a minimal HTTP client for it, and the memory of its process tree from /proc."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

HOST = "127.0.0.1"
# The service with hook handlers that do no clinical work (bench/ceiling_server.py), run as a file.
CEILING_SERVER = [sys.executable, str(Path(__file__).with_name("ceiling_server.py"))]


class ServiceFailed(RuntimeError):
    """The service did not start, or died: the message carries the tail of its log."""


def cds_service_command() -> list[str]:
    """The `cds-service` console script of this interpreter's environment (.venv/bin/cds-service)."""
    script = Path(sys.executable).with_name("cds-service")
    found = str(script) if script.exists() else shutil.which("cds-service")
    if not found:
        raise ServiceFailed("cds-service is not installed: run `.venv/bin/pip install -e .` first")
    return [found]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Client:
    """One keep-alive HTTP/1.1 connection (reopened when the server closes it, as gunicorn's sync
    workers do after every response).  Bodies go out as chunks so large requests are never copied."""

    def __init__(self, port: int, timeout: float = 300):
        self.connection = http.client.HTTPConnection(HOST, port, timeout=timeout)

    def request(self, method: str, path: str, chunks: Iterable[bytes] = ()) -> tuple[int, bytes]:
        chunks = tuple(chunks)
        for attempt in (1, 2):
            try:
                return self._send(method, path, chunks)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server closed meanwhile: reconnect once.
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, chunks: tuple[bytes, ...]) -> tuple[int, bytes]:
        conn = self.connection
        conn.putrequest(method, path, skip_accept_encoding=True)
        if chunks:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(sum(len(c) for c in chunks)))
        conn.endheaders()
        for chunk in chunks:
            conn.send(chunk)
        response = conn.getresponse()
        return response.status, response.read()

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)

    def close(self) -> None:
        self.connection.close()


@dataclass
class ProcessMemory:
    pid: int
    role: str  # "master" or "worker"
    rss_kb: int  # VmRSS: resident now
    hwm_kb: int  # VmHWM: peak resident since the process started


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)


def _kb(value: str) -> int:
    return int(value.split()[0])


_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children it has waited for (user + system)."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / _TICK  # utime, stime, cutime, cstime


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all CPUs; steal counts: a neighbour had the CPU)."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(f) for f in fh.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICK


def descendants(pid: int) -> list[int]:
    """Child processes (recursively) of `pid`, from a scan of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the (comm) that may hold spaces
        children.setdefault(ppid, []).append(int(entry))
    result, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            result.append(child)
            todo.append(child)
    return sorted(result)


class Service:
    """`cds-service serve --host 127.0.0.1 --port <free>` with the given environment; a context
    manager that waits for /healthz and stops the server (SIGTERM, then SIGKILL) on exit.
    `program`: what runs in place of the `cds-service` script (CEILING_SERVER)."""

    def __init__(self, environ: dict[str, str], log_path: Path, start_timeout: float = 60,
                 program: list[str] | None = None):
        self.environ = environ
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.port = free_port()
        self.command = [*(program or cds_service_command()), "serve", "--host", HOST, "--port", str(self.port)]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Service":
        # The caller's CDS_* settings (JWT, policy) would change what is measured: not inherited.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")} | self.environ
        with open(self.log_path, "wb") as log:
            # Own session: the server and its workers are stopped together, and never get our signals.
            self.process = subprocess.Popen(
                self.command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.__exit__(None, None, None)  # a server that never became healthy is not left running
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                client = Client(self.port, timeout=2)
                status, _ = client.get("/healthz")
                client.close()
                if status == 200:
                    self._wait_workers_booted(deadline)
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise ServiceFailed(f"/healthz did not answer 200 within {self.start_timeout:.0f} s\n{self.log_tail()}")

    def _wait_workers_booted(self, deadline: float) -> None:
        """Gunicorn boots workers one after another: wait until their number holds for a second."""
        assert self.process is not None
        count, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = len(descendants(self.process.pid))
            if now != count:
                count, since = now, time.monotonic()
            elif time.monotonic() - since >= 1.0:
                return
            time.sleep(0.1)

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise ServiceFailed(f"`{' '.join(self.command)}` exited with {code}\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the service's log, without INFO lines (one access line per request)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join([line for line in text.splitlines() if "INFO" not in line][-lines:])

    def memory(self) -> list[ProcessMemory]:
        """RSS and peak RSS of the server process and all its descendants (gunicorn master + workers)."""
        assert self.process is not None
        result = []
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            try:
                status = _status(pid)
            except OSError:
                continue  # a worker that exited (e.g. restarted by gunicorn) between listing and reading
            if "VmRSS" in status:
                result.append(ProcessMemory(pid, "master" if pid == self.process.pid else "worker",
                                            _kb(status["VmRSS"]), _kb(status["VmHWM"])))
        return result

    def cpu_seconds(self) -> float:
        """CPU time of the server: master and workers (workers that exited are in the master's)."""
        assert self.process is not None
        total = 0.0
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            try:
                total += process_cpu_seconds(pid)
            except OSError:
                continue
        return total

    def __exit__(self, *exc_info) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # gunicorn: graceful stop of master and workers
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the session we created for it, nothing else
            process.wait(timeout=5)
