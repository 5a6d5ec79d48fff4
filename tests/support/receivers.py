"""Local stand-ins for the services the supervisor reports to, each an HTTP server on a thread
that keeps every body it receives: ``Receiver`` (Slack's incoming webhook, and Sentry's envelope
endpoint: a DSN ``http://KEY@127.0.0.1:PORT/1`` sends there, gzip-compressed)."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers every POST 200 and keeps its body (decompressed) and its request line and headers."""

    def __init__(self):
        self.bodies: list[str] = []
        self.heads: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.bodies.append(body.decode("utf-8", "replace"))
                receiver.heads.append(f"{self.requestline}\n{self.headers}")
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
