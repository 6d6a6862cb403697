"""A serving platform on 127.0.0.1 speaking the `http` backend contract, for the demo, tests and benchmarks.

It keeps the traffic last PUT to its control URL and reports it back on GET, each entry `ready` unless its
version is held back; it can answer 500 a number of times, hang, report a wrong split or refuse with a 4xx,
and it records every request it got. `GET /health` answers `health_status`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    body: Any


@dataclass
class ServingStub:
    """One platform; `control_url(name)` is a deployment's control URL, `endpoint_url(name)` its endpoint."""

    url: str = ""
    traffic: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # control path -> last traffic PUT
    requests: list[Seen] = field(default_factory=list)
    unready: set[str] = field(default_factory=set)  # versions never reported ready
    hang_on: set[str] = field(default_factory=set)  # GET hangs `hang_seconds` while one of these is requested
    hang_seconds: float = 5.0
    errors: int = 0  # the next this-many control requests answer 500
    reject_put: int | None = None  # answer PUTs with this 4xx
    wrong_split: bool = False  # report the first entry 10 points lower than requested
    health_status: int = 200
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def control_url(self, name: str) -> str:
        return f"{self.url}/control/{name}"

    def endpoint_url(self, name: str) -> str:
        return f"{self.url}/{name}/predict"

    def puts(self, name: str | None = None) -> list[list[dict[str, Any]]]:
        """The traffic lists PUT (to one deployment's control URL), in order."""
        path = f"/control/{name}" if name else None
        return [s.body["traffic"] for s in self.requests if s.method == "PUT" and (path is None or s.path == path)]

    def split_puts(self, name: str | None = None) -> list[dict[str, int]]:
        return [{e["model_version"]: e["percent"] for e in t} for t in self.puts(name)]

    def start(self) -> ServingStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
                with stub._lock:
                    stub.requests.append(Seen("PUT", self.path, body))
                    if stub.errors > 0:
                        stub.errors -= 1
                        return self._answer(500, {"error": "try again"})
                    if stub.reject_put:
                        return self._answer(stub.reject_put, {"error": "bad request"})
                    stub.traffic[self.path] = body["traffic"]
                self._answer(200, {"accepted": True})

            def do_GET(self) -> None:
                with stub._lock:
                    stub.requests.append(Seen("GET", self.path, None))
                    if self.path == "/health":
                        return self._answer(stub.health_status, {"status": stub.health_status})
                    if stub.errors > 0:
                        stub.errors -= 1
                        return self._answer(500, {"error": "try again"})
                    wanted = [dict(e) for e in stub.traffic.get(self.path, [])]
                    hang = any(e["model_version"] in stub.hang_on for e in wanted)
                if hang:
                    time.sleep(stub.hang_seconds)
                report = []
                for n, entry in enumerate(wanted):
                    percent = entry["percent"] - 10 if stub.wrong_split and n == 0 and len(wanted) > 1 else None
                    report.append(
                        {
                            "model_version": entry["model_version"],
                            "percent": entry["percent"] if percent is None else percent,
                            "ready": entry["model_version"] not in stub.unready,
                        }
                    )
                if stub.wrong_split and len(report) > 1:
                    report[1]["percent"] += 10
                self._answer(200, {"traffic": report})

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
