"""A real HTTP server on 127.0.0.1 for download tests, with scripted misbehaviour.

``LoopbackServer(root)`` serves files under ``root`` (with ``Range`` support).
Behaviours, set per test on ``server.behaviour``:

- ``"normal"``: serve the file, honouring ``Range`` (206);
- ``"drop"``: the first response of each path stops half way and closes the connection;
- ``"error500"``: always answer 500;
- ``"flaky500"``: answer 500 to the first two requests of each path, then serve;
- ``"norange"``: ignore ``Range`` and always send the whole file (200).
"""

from __future__ import annotations

import http.server
import threading
from collections import Counter
from pathlib import Path


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        count = server.counts[self.path] = server.counts[self.path] + 1
        path = Path(server.root) / self.path.lstrip("/")
        if server.behaviour == "error500" or (server.behaviour == "flaky500" and count <= 2):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and server.behaviour != "norange":
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.behaviour == "drop" and count == 1:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class LoopbackServer:
    def __init__(self, root: str | Path):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.root = str(root)
        self.httpd.behaviour = "normal"
        self.httpd.requests = []
        self.httpd.counts = Counter()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def behaviour(self) -> str:
        return self.httpd.behaviour

    @behaviour.setter
    def behaviour(self, value: str) -> None:
        self.httpd.behaviour = value
        self.httpd.counts.clear()
        self.httpd.requests.clear()

    @property
    def requests(self):
        return self.httpd.requests

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
