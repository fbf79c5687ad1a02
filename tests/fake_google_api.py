"""A tiny local HTTP server standing in for Google REST APIs: it records requests and answers
with canned JSON. Used where no local counterpart of the real service exists (Vertex AI,
Service Usage, Artifact Registry); the real client libraries talk to it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any]


Responder = Callable[[Recorded], tuple[int, dict[str, Any]]]


@dataclass
class FakeApi:
    url: str
    requests: list[Recorded] = field(default_factory=list)


def paged(
    request: Recorded, field_name: str, pages: list[list[dict[str, Any]]]
) -> tuple[int, dict[str, Any]]:
    """A list method's answer, as Google's APIs page it: no ``pageToken`` asks for the first page,
    each page but the last names the next in ``nextPageToken``; any other token is refused (400)."""
    tokens = [""] + [f"page-{n}" for n in range(2, len(pages) + 1)]
    token = request.query.get("pageToken", [""])[-1]
    if token not in tokens:
        return 400, {"error": {"code": 400, "message": f"invalid page token {token!r}",
                               "status": "INVALID_ARGUMENT"}}  # fmt: skip
    index = tokens.index(token)
    body: dict[str, Any] = {field_name: pages[index]}
    if index + 1 < len(pages):
        body["nextPageToken"] = tokens[index + 1]
    return 200, body


@contextmanager
def fake_google_api(respond: Responder) -> Iterator[FakeApi]:
    """Serve ``respond(request) -> (status, json)`` on 127.0.0.1; yield it with its URL."""
    api = FakeApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            request = Recorded(self.command, unquote(parts.path), parse_qs(parts.query), body)
            api.requests.append(request)
            status, payload = respond(request)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
