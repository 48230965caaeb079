"""A real HTTP receiver on 127.0.0.1 for webhook tests: answers with a planned sequence of
statuses, can hold a request unanswered, and records everything it receives."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int | None  # None: held, never answered


@dataclass
class Receiver:
    url: str = ""
    plan: list[int] = field(default_factory=list)  # statuses for the next requests, then 200
    hold_next: bool = False  # hold the next request unanswered until ``release``
    received: list[Received] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _release: threading.Event = field(default_factory=threading.Event)

    def _handle(self, headers: dict[str, str], body: bytes) -> int | None:
        with self._changed:
            hold = self.hold_next
            self.hold_next = False
            status = None if hold else (self.plan.pop(0) if self.plan else 200)
            self.received.append(Received(headers, body, status))
            self._changed.notify_all()
        if hold:
            self._release.wait(30)
        return status

    def release(self) -> None:
        self._release.set()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Blocks until ``count`` requests arrived (fails after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"only {len(self.received)} of {count} requests arrived")
                self._changed.wait(left)
            return list(self.received)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver._handle({k.lower(): v for k, v in self.headers.items()}, body)
            if status is None:
                self.close_connection = True
                return
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()
