"""Receivers for notification dispatch tests: a threading HTTP server on 127.0.0.1 that verifies Standard Webhooks
signatures, records what arrived, and answers what each test scripts (fail, stall, 429, refuse)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Arrival:
    path: str
    msg_id: str | None
    headers: dict[str, str]
    body: bytes
    status: int
    verified: bool | None

    def json(self) -> Any:
        return json.loads(self.body)


# (path, webhook-id, how many times this id arrived on this path before) -> (status, headers, delay seconds)
Script = Callable[[str, str | None, int], tuple[int, dict[str, str], float]]


@dataclass
class Receiver:
    url: str = ""
    secret: str | None = SECRET
    arrivals: list[Arrival] = field(default_factory=list)
    script: Script = lambda path, msg_id, seen: (200, {}, 0.0)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self, path: str | None = None) -> Counter:
        """webhook-id -> how many times it was answered 2xx (on `path`, or anywhere)."""
        return Counter(a.msg_id for a in self.arrivals if 200 <= a.status < 300 and (path is None or a.path == path))

    def on(self, path: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.path == path]


def start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            msg_id = headers.get("webhook-id")
            verified = None
            if receiver.secret and "webhook-signature" in headers:
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
            with receiver.lock:
                seen = sum(1 for a in receiver.arrivals if a.msg_id == msg_id and a.path == self.path)
                status, extra, delay = receiver.script(self.path, msg_id, seen)
                arrival = Arrival(self.path, msg_id, headers, body, status, verified)
                receiver.arrivals.append(arrival)
            if delay:
                time.sleep(delay)
            reply = b"{}"
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server
