"""A loopback HTTP file server with byte ranges, for reading FITS files through fsspec's HTTP backend.

It serves one directory (HEAD with Content-Length, GET with a single ``Range: bytes=a-b``
answered 206, as object stores and web servers do) and counts the bytes it sends per file, so
tests can prove that a reader asked for the header and not the whole file.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

__all__ = ["FileServer", "serve_directory"]

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class FileServer:
    """A running server: its base URL and the bytes sent so far, by file name."""

    url: str
    root: Path
    sent: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url_of(self, name: str) -> str:
        return f"{self.url}/{name}"


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet: pytest treats stray output as noise
            pass

        def _file(self) -> Path | None:
            path = (server.root / unquote(self.path.split("?", 1)[0]).lstrip("/")).resolve()
            if server.root.resolve() not in path.parents or not path.is_file():
                self.send_error(404)
                return None
            return path

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            path = self._file()
            if path is not None:
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            path = self._file()
            if path is None:
                return
            size = path.stat().st_size
            match = _RANGE.match(self.headers.get("Range", ""))
            start, end = 0, size - 1
            if match:
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.end_headers()
                    return
            with open(path, "rb") as f:
                f.seek(start)
                body = f.read(end - start + 1)
            self.send_response(206 if match else 200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if match:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            with server.lock:  # counted before the client can see the bytes, so a test never reads a stale count
                server.sent[path.name] += len(body)
            self.wfile.write(body)

    return Handler


class _Server(ThreadingHTTPServer):
    # a listen backlog like a real server's: a cutout sends its ranged GETs together
    # (vo.storage.read_ranges), and socketserver's default of 5 leaves the rest to SYN retries
    request_queue_size = 256
    daemon_threads = True


@contextmanager
def serve_directory(root: Path) -> Iterator[FileServer]:
    """Serve ``root`` on a free loopback port until the block ends."""
    state = FileServer(url="", root=root)
    httpd = _Server(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
