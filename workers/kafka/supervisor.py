"""Run `clientshift run` as a child process and know when it has caught up: the demo, the benchmark
and the end-to-end tests drive real worker processes with this."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from workers.kafka.ports import free_port
from workers.kafka.settings import Settings
from workers.kafka.topics import group_lag


class WorkerError(RuntimeError):
    pass


class WorkerNotAnswering(WorkerError):
    pass


class WorkerProcess:
    def __init__(self, env: Mapping[str, str], log_path: Path,
                 command: tuple[str, ...] = ("-m", "workers.cli", "run")) -> None:
        self.command = command
        self.port = int(env.get("CLIENTSHIFT_WEB_PORT") or free_port())
        self.env = {**os.environ, **env, "CLIENTSHIFT_WEB_PORT": str(self.port)}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, *self.command], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return self

    def get(self, path: str) -> tuple[int, Any]:
        try:
            status, body = self._request(path)
        except OSError as exc:
            # Said with the worker's own last words: a worker that stops answering has usually crashed.
            raise WorkerNotAnswering(f"worker on port {self.port} did not answer {path} ({exc}); "
                                     f"{self._last_words()}") from exc
        if path == "/metrics":
            return status, body.decode()
        return status, json.loads(body)

    def _request(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if self._request("/readyz")[0] == 200:
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.1)  # polling a readiness endpoint
        raise WorkerError(f"worker not ready within {timeout:.0f} s; log: {self.log_path}")

    def _check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise WorkerError(self._last_words())

    def _last_words(self) -> str:
        state = "running" if self.process and self.process.poll() is None else \
            f"exited with {self.process and self.process.returncode}"
        tail = ""
        if self.log_path.exists():
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 3000))
                tail = log.read().decode(errors="replace")
        return f"worker {state}, log {self.log_path} ends:\n{tail}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def wait_until_quiet(settings: Settings, workers: list[WorkerProcess], timeout: float = 120.0) -> None:
    """Block until every input, tick and action has been processed and committed, and no deadline is
    due: twice in a row, so a tick or action produced between two looks is not missed."""
    topics = settings.topics.consumed()
    deadline = time.monotonic() + timeout
    quiet_looks = 0
    while time.monotonic() < deadline:
        for worker in workers:
            worker._check_alive()
        lag = group_lag(settings, settings.group_id, topics)
        due = sum(worker.get("/status")[1]["due_deadlines"] for worker in workers)
        quiet_looks = quiet_looks + 1 if not any(lag.values()) and not due else 0
        if quiet_looks >= 2:
            return
        time.sleep(0.3)  # polling committed offsets of another process
    raise WorkerError(f"workers did not catch up within {timeout:.0f} s (lag {lag}, due deadlines {due})")
