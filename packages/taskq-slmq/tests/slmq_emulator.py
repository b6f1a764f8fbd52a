"""An EMULATOR of the SoftLayer Message Queue REST API (v1): not the service.

The service was retired and never had a downloadable server, so the tests talk, through the
real ``softlayer_messaging`` client (and kombu's SLMQ transport), to this threaded stdlib HTTP
server, over plain HTTP or, given a server-side ``ssl.SSLContext``, over HTTPS (kombu's transport
always builds an ``https://`` endpoint). It implements the documented calls the client library
makes, and nothing else:

- ``POST /v1/<account>/auth`` with ``X-Auth-User``/``X-Auth-Key``: 200 with ``X-Auth-Token``
  (401 for a wrong user or key); every other call needs that token (401 without it).
- ``GET /v1/<account>/queues[?tags=a,b]``, ``PUT /v1/<account>/queues/<name>`` (create or
  modify: ``visibility_interval``, ``expiration``, ``tags``), ``GET .../queues/<name>``
  (``message_count``, ``visible_message_count``), ``DELETE .../queues/<name>?force=1``.
- ``POST .../queues/<name>/messages`` (``body``, ``fields``, ``visibility_delay``),
  ``GET .../queues/<name>/messages?batch=N`` (up to 100 visible messages, oldest first; each
  becomes invisible for the queue's ``visibility_interval``), ``DELETE .../messages/<id>``.
- ``GET /v1/ping``.

Knowingly different from the service: one node with exact timing (the service rounded to whole
seconds and was eventually consistent), no message expiration, no topics, no stats.
"""

from __future__ import annotations

import itertools
import json
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["SlmqEmulator"]

#: The service's largest batch.
MAX_BATCH = 100


@dataclass
class _Message:
    id: str
    body: str
    fields: dict[str, Any]
    visible_at: float
    entered: float
    seq: int

    def as_json(self, interval: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "body": self.body,
            "fields": self.fields,
            "visibility_delay": 0,
            "visibility_interval": interval,
            "initial_entry_time": self.entered,
        }


@dataclass
class _Queue:
    name: str
    visibility_interval: float = 30.0
    expiration: int = 604800
    tags: list[str] = field(default_factory=list[str])
    messages: dict[str, _Message] = field(default_factory=dict[str, _Message])

    def detail(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "visibility_interval": self.visibility_interval,
            "expiration": self.expiration,
            "tags": self.tags,
            "message_count": len(self.messages),
            "visible_message_count": sum(m.visible_at <= now for m in self.messages.values()),
        }


class _State:
    def __init__(self, account: str, user: str, api_key: str) -> None:
        self.account, self.user, self.api_key = account, user, api_key
        self.lock = threading.Lock()
        self.tokens: set[str] = set()
        self.queues: dict[str, _Queue] = {}
        self.seq = itertools.count()


class _Handler(BaseHTTPRequestHandler):
    server: _Server  # pyright: ignore[reportIncompatibleVariableOverride]
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = [unquote(p) for p in split.path.strip("/").split("/")]
        state = self.server.state
        if parts == ["v1", "ping"]:
            self._reply(200, {"message": "pong"})
            return
        if len(parts) < 3 or parts[0] != "v1" or parts[1] != state.account:
            self._reply(404, {"message": "Not found"})
            return
        rest = parts[2:]
        if rest == ["auth"] and method == "POST":
            if (self.headers.get("X-Auth-User"), self.headers.get("X-Auth-Key")) != (
                state.user,
                state.api_key,
            ):
                self._reply(401, {"message": "Unauthorized"})
                return
            token = uuid.uuid4().hex
            with state.lock:
                state.tokens.add(token)
            self._reply(200, {"status": "OK"}, {"X-Auth-Token": token})
            return
        if self.headers.get("X-Auth-Token") not in state.tokens:
            self._reply(401, {"message": "Unauthorized"})
            return
        body: dict[str, Any] = json.loads(raw) if raw else {}
        with state.lock:
            self._dispatch(method, rest, query, body)

    def _dispatch(
        self, method: str, rest: list[str], query: dict[str, str], body: dict[str, Any]
    ) -> None:
        state = self.server.state
        now = time.time()
        if rest == ["queues"] and method == "GET":
            wanted = set(filter(None, query.get("tags", "").split(",")))
            items = [
                q.detail(now)
                for q in state.queues.values()
                if not wanted or wanted.issubset(q.tags)
            ]
            self._reply(200, {"item_count": len(items), "items": items})
            return
        if len(rest) < 2 or rest[0] != "queues":
            self._reply(404, {"message": "Not found"})
            return
        name = rest[1]
        queue = state.queues.get(name)
        if len(rest) == 2:
            if method == "PUT":
                created = queue is None
                queue = queue or _Queue(name)
                if "visibility_interval" in body:
                    queue.visibility_interval = float(body["visibility_interval"])
                if "expiration" in body:
                    queue.expiration = int(body["expiration"])
                if "tags" in body:
                    queue.tags = [str(t) for t in body["tags"]]
                state.queues[name] = queue
                detail = queue.detail(now)
                detail["message"] = "Object created" if created else "Object updated"
                self._reply(201 if created else 200, detail)
            elif queue is None:
                self._reply(404, {"message": "Queue not found"})
            elif method == "GET":
                self._reply(200, queue.detail(now))
            elif method == "DELETE":
                if queue.messages and "force" not in query:
                    self._reply(409, {"message": "Queue is not empty"})
                    return
                del state.queues[name]
                self._reply(202, {"message": "Object queued for deletion"})
            else:
                self._reply(405, {"message": "Method not allowed"})
            return
        if queue is None:
            self._reply(404, {"message": "Queue not found"})
            return
        if rest[2:] == ["messages"] and method == "POST":
            delay = float(body.get("visibility_delay") or 0)
            message = _Message(
                id=uuid.uuid4().hex,
                body=str(body.get("body", "")),
                fields=dict(body.get("fields") or {}),
                visible_at=now + delay,
                entered=now,
                seq=next(state.seq),
            )
            queue.messages[message.id] = message
            reply = {
                "id": message.id,
                "body": message.body,
                "fields": message.fields,
                "visibility_delay": delay,
                "message": "Object created",
            }
            self._reply(201, reply)
        elif rest[2:] == ["messages"] and method == "GET":
            batch = max(1, min(int(query.get("batch") or 1), MAX_BATCH))
            ready = sorted(
                (m for m in queue.messages.values() if m.visible_at <= now),
                key=lambda m: (m.visible_at, m.seq),
            )[:batch]
            for message in ready:
                message.visible_at = now + queue.visibility_interval
            items = [m.as_json(queue.visibility_interval) for m in ready]
            self._reply(200, {"item_count": len(items), "items": items})
        elif len(rest) == 4 and rest[2] == "messages" and method == "DELETE":
            if queue.messages.pop(rest[3], None) is None:
                self._reply(404, {"message": "Message not found"})
            else:
                self._reply(202, {"message": "Object queued for deletion"})
        else:
            self._reply(404, {"message": "Not found"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        if self.tls is None:
            return connection, address
        # The handshake waits for the client: leave it to the request's own thread
        # (finish_request) so one slow client cannot stall the accept loop.
        wrapped = self.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(30)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                return  # a client that does not trust us, or went away: nothing to serve
        super().finish_request(request, client_address)


class SlmqEmulator:
    """The emulator on a free loopback port for one account, user and API key; over HTTPS
    when given ``tls``, a server-side context holding a certificate for 127.0.0.1."""

    def __init__(
        self,
        account: str = "taskqacct",
        user: str = "taskq",
        api_key: str = "secret",
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.account, self.user, self.api_key = account, user, api_key
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State(account, user, api_key)
        self._server.tls = tls
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def secure(self) -> bool:
        """Whether it serves HTTPS (the ``secure`` transport option clients need)."""
        return self._server.tls is not None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """A broker URL, ``slmq://user:key@host:port/account``, for taskq and kombu alike."""
        return f"slmq://{self.user}:{self.api_key}@127.0.0.1:{self.port}/{self.account}"

    def start(self) -> SlmqEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
