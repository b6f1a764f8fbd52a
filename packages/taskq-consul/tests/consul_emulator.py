"""An EMULATOR of the part of Consul's HTTP API that the Consul transports use: not Consul.

No Consul agent can run on the machines these tests run on, so the tests talk, through the real
py-consul client (and kombu's transport), to this small threaded stdlib HTTP server instead. It
implements what Consul documents for these endpoints, and nothing else:

- ``GET /v1/kv/<key>`` with ``recurse``, ``keys`` (and ``separator``), blocking queries
  (``index`` + ``wait``) and the ``X-Consul-Index`` header; 404 when nothing matches.
- ``PUT /v1/kv/<key>`` with ``cas`` (0: create only; n: only if ``ModifyIndex`` is n),
  ``flags``, ``acquire`` and ``release`` (a key locked by one session cannot be acquired by
  another; a plain PUT keeps the lock); answers ``true``/``false``.
- ``DELETE /v1/kv/<key>`` with ``recurse`` and ``cas`` (a missing key counts as deleted, as in
  Consul's state store).
- ``PUT /v1/session/create`` (``TTL``, ``Behavior`` release/delete, ``LockDelay``),
  ``PUT /v1/session/renew/<id>`` (404 for an unknown session), ``PUT /v1/session/destroy/<id>``,
  ``GET /v1/session/info/<id>``. A session whose TTL passes is invalidated by a background
  thread: its locks are released (or its keys deleted), and the lock delay keeps released keys
  from being acquired again for a while, as Consul does.
- ``GET /v1/status/leader`` and ``GET /v1/agent/self``, for readiness checks.

Where it differs from Consul, knowingly: one node, no Raft, no ACLs, no datacenters; a session
expires exactly at its TTL (Consul may wait up to twice the TTL); blocking queries add no jitter.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["ConsulEmulator", "MAX_VALUE_SIZE"]

_DURATION = re.compile(r"([\d.]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
#: Consul's default and maximum blocking-query wait.
_DEFAULT_WAIT = 300.0
_MAX_WAIT = 600.0
#: Consul's default ``kv_max_value_size``: 512 KiB per value.
MAX_VALUE_SIZE = 512 * 1024


def _duration(text: str) -> float:
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))


@dataclass
class _Entry:
    create_index: int
    modify_index: int
    lock_index: int
    flags: int
    value: bytes | None
    session: str | None

    def as_json(self, key: str) -> dict[str, Any]:
        found: dict[str, Any] = {
            "Key": key,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
            "LockIndex": self.lock_index,
            "Flags": self.flags,
            "Value": None if self.value is None else base64.b64encode(self.value).decode(),
        }
        if self.session:
            found["Session"] = self.session
        return found


@dataclass
class _Session:
    id: str
    name: str
    ttl: float | None
    behavior: str
    lock_delay: float
    expires_at: float | None
    create_index: int

    def as_json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Name": self.name,
            "Node": "emulator",
            "LockDelay": int(self.lock_delay * 1e9),
            "Behavior": self.behavior,
            "TTL": "" if self.ttl is None else f"{self.ttl:g}s",
            "CreateIndex": self.create_index,
            "ModifyIndex": self.create_index,
        }


class _Store:
    """The KV store and sessions, under one condition that blocking queries wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.index = 1
        self.kv: dict[str, _Entry] = {}
        self.tombstones: dict[str, int] = {}
        self.sessions: dict[str, _Session] = {}
        #: Keys a lock delay keeps from being acquired: key -> monotonic time it ends.
        self.lock_delays: dict[str, float] = {}

    # -- reads -------------------------------------------------------------------------

    def prefix_index(self, key: str, prefix: bool) -> int:
        if not prefix:
            entry = self.kv.get(key)
            found = entry.modify_index if entry else self.tombstones.get(key, 0)
        else:
            found = max(
                [e.modify_index for k, e in self.kv.items() if k.startswith(key)]
                + [i for k, i in self.tombstones.items() if k.startswith(key)],
                default=0,
            )
        return found or self.index

    # -- writes (callers hold cond) ------------------------------------------------------

    def bump(self) -> int:
        self.index += 1
        self.cond.notify_all()
        return self.index

    def remove(self, key: str) -> None:
        del self.kv[key]
        self.tombstones[key] = self.bump()

    def invalidate(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        until = time.monotonic() + session.lock_delay
        for key, entry in list(self.kv.items()):
            if entry.session != session_id:
                continue
            if session.behavior == "delete":
                self.remove(key)
            else:
                entry.session = None
                entry.modify_index = self.bump()
            if session.lock_delay > 0:
                self.lock_delays[key] = until
        self.bump()

    def expire_sessions(self) -> None:
        now = time.monotonic()
        for session in list(self.sessions.values()):
            if session.expires_at is not None and session.expires_at <= now:
                self.invalidate(session.id)


class _Handler(BaseHTTPRequestHandler):
    server: _Server  # pyright: ignore[reportIncompatibleVariableOverride]
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; without this, Nagle plus delayed ACKs add 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests' output is for the tests

    # -- plumbing ----------------------------------------------------------------------

    def _parts(self) -> tuple[str, dict[str, str]]:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        return unquote(split.path), query

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, payload: Any, index: int | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if index is not None:
            self.send_header("X-Consul-Index", str(index))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path, query = self._parts()
        store = self.server.store
        if path.startswith("/v1/kv/"):
            self._kv_get(path[len("/v1/kv/") :], query)
        elif path.startswith("/v1/session/info/"):
            with store.cond:
                session = store.sessions.get(path.rsplit("/", 1)[1])
                self._reply(200, [session.as_json()] if session else [], store.index)
        elif path == "/v1/status/leader":
            self._reply(200, "127.0.0.1:8300")
        elif path == "/v1/agent/self":
            self._reply(200, {"Config": {"Datacenter": "dc1", "NodeName": "emulator"}})
        else:
            self._reply(404, b"unsupported by the emulator")

    def do_PUT(self) -> None:
        path, query = self._parts()
        body = self._body()
        if path.startswith("/v1/kv/"):
            if len(body) > MAX_VALUE_SIZE:
                message = f"Request body({len(body)} bytes) too large, max size: {MAX_VALUE_SIZE}"
                self._reply(413, message.encode())
                return
            self._kv_put(path[len("/v1/kv/") :], query, body)
        elif path == "/v1/session/create":
            self._session_create(body)
        elif path.startswith("/v1/session/renew/"):
            self._session_renew(path.rsplit("/", 1)[1])
        elif path.startswith("/v1/session/destroy/"):
            with self.server.store.cond:
                self.server.store.invalidate(path.rsplit("/", 1)[1])
            self._reply(200, True)
        else:
            self._reply(404, b"unsupported by the emulator")

    def do_DELETE(self) -> None:
        path, query = self._parts()
        self._body()
        if not path.startswith("/v1/kv/"):
            self._reply(404, b"unsupported by the emulator")
            return
        key = path[len("/v1/kv/") :]
        store = self.server.store
        with store.cond:
            if "recurse" in query:
                for name in [k for k in store.kv if k.startswith(key)]:
                    store.remove(name)
                self._reply(200, True)
                return
            entry = store.kv.get(key)
            if "cas" in query:
                cas = int(query["cas"])
                if entry is not None and entry.modify_index != cas:
                    self._reply(200, False)
                    return
            if entry is not None:
                store.remove(key)
            self._reply(200, True)

    # -- KV ----------------------------------------------------------------------------

    def _kv_get(self, key: str, query: dict[str, str]) -> None:
        store = self.server.store
        prefix = "recurse" in query or "keys" in query
        with store.cond:
            wanted = int(query.get("index") or 0)
            if wanted:
                wait = min(
                    _duration(query["wait"]) if "wait" in query else _DEFAULT_WAIT, _MAX_WAIT
                )
                deadline = time.monotonic() + wait
                while store.prefix_index(key, prefix) <= wanted:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    store.cond.wait(remaining)
            index = store.prefix_index(key, prefix)
            if "keys" in query:
                separator = query.get("separator") or ""
                names: list[str] = []
                for name in sorted(k for k in store.kv if k.startswith(key)):
                    cut = name.find(separator, len(key)) if separator else -1
                    listed = name[: cut + 1] if cut >= 0 else name
                    if not names or names[-1] != listed:
                        names.append(listed)
                if names:
                    self._reply(200, names, index)
                else:
                    self._reply(404, b"", index)
                return
            if "recurse" in query:
                found = [store.kv[k].as_json(k) for k in sorted(store.kv) if k.startswith(key)]
            else:
                entry = store.kv.get(key)
                found = [entry.as_json(key)] if entry else []
            if found:
                self._reply(200, found, index)
            else:
                self._reply(404, b"", index)

    def _kv_put(self, key: str, query: dict[str, str], raw: bytes) -> None:
        store = self.server.store
        body = raw or None  # Consul stores an empty PUT as a null value
        flags = int(query.get("flags") or 0)
        with store.cond:
            entry = store.kv.get(key)
            if "acquire" in query:
                self._acquire(key, entry, query["acquire"], flags, body)
                return
            if "release" in query:
                session = query["release"]
                if entry is None or entry.session != session:
                    self._reply(200, False)
                    return
                entry.session = None
                entry.value, entry.flags = body, flags
                entry.modify_index = store.bump()
                self._reply(200, True)
                return
            if "cas" in query:
                cas = int(query["cas"])
                if (cas == 0 and entry is not None) or (
                    cas != 0 and (entry is None or entry.modify_index != cas)
                ):
                    self._reply(200, False)
                    return
            index = store.bump()
            if entry is None:
                store.kv[key] = _Entry(index, index, 0, flags, body, None)
            else:
                entry.value, entry.flags, entry.modify_index = body, flags, index
            self._reply(200, True)

    def _acquire(
        self, key: str, entry: _Entry | None, session_id: str, flags: int, body: bytes | None
    ) -> None:
        store = self.server.store
        if session_id not in store.sessions:
            self._reply(500, f"invalid session {session_id!r}".encode())
            return
        if entry is not None and entry.session not in (None, session_id):
            self._reply(200, False)
            return
        if store.lock_delays.get(key, 0.0) > time.monotonic():
            self._reply(200, False)
            return
        index = store.bump()
        if entry is None:
            store.kv[key] = _Entry(index, index, 1, flags, body, session_id)
        else:
            if entry.session is None:
                entry.lock_index += 1
            entry.session = session_id
            entry.value, entry.flags, entry.modify_index = body, flags, index
        self._reply(200, True)

    # -- sessions ----------------------------------------------------------------------

    def _session_create(self, body: bytes) -> None:
        spec: dict[str, Any] = {k.lower(): v for k, v in (json.loads(body) if body else {}).items()}
        ttl = _duration(spec["ttl"]) if spec.get("ttl") else None
        if ttl is not None and not 10 <= ttl <= 86400:
            self._reply(400, b"Invalid Session TTL: must be between 10s and 24h")
            return
        behavior = spec.get("behavior") or "release"
        lock_delay = _duration(str(spec["lockdelay"])) if "lockdelay" in spec else 15.0
        store = self.server.store
        with store.cond:
            session = _Session(
                id=str(uuid.uuid4()),
                name=str(spec.get("name") or ""),
                ttl=ttl,
                behavior=behavior,
                lock_delay=lock_delay,
                expires_at=None if ttl is None else time.monotonic() + ttl,
                create_index=store.bump(),
            )
            store.sessions[session.id] = session
            self._reply(200, {"ID": session.id})

    def _session_renew(self, session_id: str) -> None:
        store = self.server.store
        with store.cond:
            session = store.sessions.get(session_id)
            if session is None:
                self._reply(404, f"Session id '{session_id}' not found".encode())
                return
            if session.ttl is not None:
                session.expires_at = time.monotonic() + session.ttl
            self._reply(200, [session.as_json()])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    store: _Store


class ConsulEmulator:
    """The emulator on a free loopback port; ``start()``, then ``host``/``port``; ``stop()``."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.store = _Store()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"consul://{self.host}:{self.port}"

    def start(self) -> ConsulEmulator:
        for target in (self._server.serve_forever, self._expire_sessions):
            thread = threading.Thread(target=target, name="consul-emulator", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def invalidate_session(self, session_id: str) -> None:
        """What Consul does when a session's TTL passes unrenewed, now (tests of dead workers)."""
        store = self._server.store
        with store.cond:
            store.invalidate(session_id)

    def _expire_sessions(self) -> None:
        store = self._server.store
        while not self._stopped.wait(0.1):
            with store.cond:
                store.expire_sessions()
