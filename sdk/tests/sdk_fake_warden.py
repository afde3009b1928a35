"""A scripted HTTP server standing in for Warden in the SDK's unit tests: real sockets, canned answers.

The end-to-end tests (tests/test_sdk_live.py) run against a real Warden; these tests need a
server that misbehaves on cue (503, a slow answer, a lost response), which Warden will not.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeWarden:
    url: str
    replies: list[Reply]
    received: list[Received]

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)


def decision(outcome: str = "allow", call_id: str = "call-1", **extra: Any) -> dict[str, Any]:
    """A decision document as POST /api/v1/tool-calls answers it."""
    return {
        "id": call_id,
        "decision": outcome,
        "reasons": extra.pop("reasons", []),
        "shadow": None,
        "contract_version": 1,
        "policy_version": 3,
        "decision_token": "token" if outcome == "allow" else None,
        "expires_at": None,
        **extra,
    }


@contextmanager
def fake_warden() -> Iterator[FakeWarden]:
    """Serve scripted replies in order (404 once the script runs out), recording every request."""
    replies: list[Reply] = []
    received: list[Received] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            with lock:
                received.append(Received(self.command, self.path, dict(self.headers), json.loads(raw) if raw else None))
                reply = replies.pop(0) if replies else Reply(404, {"code": "not_found", "message": "Unscripted."})
            time.sleep(reply.delay)
            payload = json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                pass

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeWarden(f"http://127.0.0.1:{server.server_port}", replies, received)
    finally:
        server.shutdown()
        server.server_close()
