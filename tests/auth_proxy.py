"""A loopback HTTP proxy that adds ``Authorization: Bearer`` to every request it forwards.

STILTS ``taplint`` (3.4, as Debian ships it) cannot send a token itself; run through this
proxy, it validates the service exactly as an authenticated client sees it. The ``Host``
header is kept as the proxy's, so every URL the service builds (job locations, access URLs)
points back at the proxy and taplint's follow-up requests carry the token too.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

__all__ = ["TokenProxy"]

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
        "content-length"}


class TokenProxy:
    """Forward ``http://127.0.0.1:<port>/...`` to ``target`` with ``token``."""

    def __init__(self, target: str, token: str) -> None:
        client = httpx.Client(base_url=target, timeout=120, follow_redirects=False)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> bytes | None:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    # taplint streams uploads in chunks (RFC 9112 section 7.1)
                    data = bytearray()
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    while self.rfile.readline().strip():  # trailer fields
                        pass
                    return bytes(data)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def _forward(self) -> None:
                body = self._body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                headers["Authorization"] = f"Bearer {token}"
                request = client.build_request(self.command, self.path, headers=headers, content=body)
                response = client.send(request, stream=True)
                try:
                    self.send_response(response.status_code)
                    for k, v in response.headers.multi_items():
                        if k.lower() not in _HOP and k.lower() != "content-encoding":
                            self.send_header(k, v)
                    data = response.read()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    response.close()

            do_GET = do_POST = do_HEAD = do_DELETE = _forward  # noqa: N815 - http.server's names

            def log_message(self, *args: object) -> None:
                pass

        self._client = client
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._client.close()
