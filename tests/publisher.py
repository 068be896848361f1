"""A stand-in for the model publishers (GitHub releases, Git LFS media, a site mirror): a real
HTTP/1.1 server on loopback with what `models fetch` meets out there.

It answers redirects (302, as GitHub does for release assets), 404 for what it does not hold,
Range and If-Range requests (206, 416) with a strong ETag, requests in absolute form (as an
HTTP proxy receives them), and can cut a connection after part of a body, once per entry queued.
Every request is recorded with its headers, so tests check what reached the network.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    proxied_host: str | None  # the host of an absolute-form request (sent to a proxy)


@dataclass
class Publisher:
    files: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    # path -> byte counts: each GET of that path sends the next count of its body, then cuts.
    cuts: dict[str, list[int]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def gets(self, path: str) -> list[Request]:
        return [request for request in self.requests if request.path == path]

    def start(self) -> Publisher:
        publisher = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                proxied = parts.netloc or None
                path = parts.path
                publisher.requests.append(Request(path, dict(self.headers.items()), proxied))
                if path in publisher.redirects:
                    self._answer(302, {"Location": publisher.redirects[path]}, b"")
                    return
                data = publisher.files.get(path)
                if data is None:
                    self._answer(404, {}, b"not found")
                    return
                etag = f'"{hashlib.sha256(data).hexdigest()[:20]}"'
                start = self._range_start(etag)
                if start is not None and start >= len(data):
                    self._answer(416, {"Content-Range": f"bytes */{len(data)}"}, b"")
                    return
                headers = {"ETag": etag, "Accept-Ranges": "bytes"}
                if start:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    body, status = data[start:], 206
                else:
                    body, status = data, 200
                cut = publisher.cuts.get(path)
                self._answer(status, headers, body, cut.pop(0) if cut else None)

            def _range_start(self, etag: str) -> int | None:
                wanted = self.headers.get("Range", "")
                if not wanted.startswith("bytes=") or not wanted.endswith("-"):
                    return None
                if self.headers.get("If-Range", etag) != etag:
                    return None  # the file changed: the whole of it
                return int(wanted[len("bytes=") : -1])

            def _answer(
                self, status: int, headers: dict[str, str], body: bytes, cut: int | None = None
            ) -> None:
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                if cut is None:
                    self.wfile.write(body)
                    return
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client gone after a cut connection is what the tests arrange

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
