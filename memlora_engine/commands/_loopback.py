"""Throwaway servers on loopback for ``memlora bench-load`` and the server-mode tests: ``chroma run``, PostgreSQL, ``memlora serve``.

Each is started in a temporary directory on a free port and stopped by its pid.
PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` user (``runuser``), in a directory that user owns.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ChromaServer", "ModelServer", "PostgresServer", "free_port", "postgres_binaries"]

_PG_BIN = ("/usr/local/bin", "/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited early (status {proc.returncode})") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{what} did not start in {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes] | None, *, timeout: float) -> None:
    """Terminate ``proc`` (if running) and wait; kill it when it does not exit within ``timeout``."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class ChromaServer:
    """``chroma run --path DIR`` on 127.0.0.1; :meth:`stop` and :meth:`start` again keep the data."""

    path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def launch(cls, path: Path) -> ChromaServer:
        server = cls(path, free_port())
        server.start()
        return server

    def start(self) -> None:
        chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
        self.proc = subprocess.Popen(
            [chroma, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.proc, "chroma run")

    def stop(self) -> None:
        _stop(self.proc, timeout=20)
        self.proc = None


def postgres_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    for folder in (*_PG_BIN, *(os.environ.get("PATH", "").split(os.pathsep))):
        if all((Path(folder) / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (``fsync=off``: test data only)."""

    root: Path
    port: int
    bin: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://memlora@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed: {done.stderr or done.stdout}")

    @classmethod
    def launch(cls) -> PostgresServer:
        found = postgres_binaries()
        if found is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        # Not under pytest's tmp (0700, root's): the server user must reach it.
        root = Path(tempfile.mkdtemp(prefix="memlora-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        server = cls(root, free_port(), found)
        server._run(str(found / "initdb"), "-D", str(server.data), "-U", "memlora", "--auth=trust", "-E", "UTF8",
                    "--no-sync", "--no-instructions")
        server.start()
        return server

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "-t", "60", "start")

    def stop(self, *, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop(mode="immediate")
        except RuntimeError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class ModelServer:
    """``memlora serve`` (the shipped experts) on 127.0.0.1; the port opens once the model is loaded."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @classmethod
    def launch(cls, *, threads: int | None = None, timeout: float = 600) -> ModelServer:
        server = cls(free_port())
        command = [sys.executable, "-m", "memlora_engine.commands", "serve", "--port", str(server.port),
                   "--log-level", "warning"]
        if threads is not None:
            command += ["--threads", str(threads)]
        server.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(server.port, server.proc, "memlora serve", timeout=timeout)
        return server

    def stop(self) -> None:
        _stop(self.proc, timeout=30)
        self.proc = None
