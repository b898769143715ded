"""A real S3-compatible server for the tests: moto's standalone server in a subprocess, behind a
loopback TCP relay that counts the bytes the store sends, so a test can prove how much a
cutout fetched without trusting the service's own figures.

The relay forwards bytes unchanged in both directions (HTTP keep-alive included) and adds the
store-to-client bytes of every connection, HTTP headers too, to one counter: what a cloud bill
or a network graph would show.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["S3Server", "s3_server"]

#: fixed test credentials: moto accepts any, s3fs and boto3 need some
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "vlkb-test", "AWS_SECRET_ACCESS_KEY": "vlkb-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    """A running store: the endpoint clients use (the counting relay) and the bytes it has sent."""

    endpoint: str
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach the store through s3fs/boto3 (``AWS_ENDPOINT_URL`` is botocore's own)."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def add(self, n: int) -> None:
        with self.lock:
            self.sent += n

    def reset(self) -> int:
        """The bytes sent since the last reset; starts a new count."""
        with self.lock:
            n, self.sent = self.sent, 0
        return n


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pipe(src: socket.socket, dst: socket.socket, count: S3Server | None) -> None:
    try:
        while data := src.recv(1 << 16):
            if count is not None:
                count.add(len(data))
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _relay(listener: socket.socket, upstream: int, state: S3Server, stop: threading.Event) -> None:
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        try:
            server = socket.create_connection(("127.0.0.1", upstream))
        except OSError:
            client.close()
            continue
        threading.Thread(target=_pipe, args=(client, server, None), daemon=True).start()
        threading.Thread(target=_pipe, args=(server, client, state), daemon=True).start()


@contextmanager
def s3_server(log_dir: Path) -> Iterator[S3Server]:
    """moto's S3 server on a free port, reached through a counting relay, until the block ends."""
    port = _free_port()
    log = open(log_dir / f"moto-{port}.log", "wb")  # noqa: SIM115 - closed below
    moto = str(Path(sys.executable).parent / "moto_server")
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **CREDENTIALS})
    listener = socket.create_server(("127.0.0.1", 0))
    state = S3Server(endpoint=f"http://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()
    thread = threading.Thread(target=_relay, args=(listener, port, state, stop), daemon=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: see {log.name}") from None
                time.sleep(0.2)
        thread.start()
        yield state
    finally:
        stop.set()
        listener.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
