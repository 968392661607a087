"""Helpers for the agent tests: generated models, and a TCP proxy that can cut the control plane."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wire import manifest


def wait_for(predicate, timeout: float = 60.0, what: str = "condition", every: float = 0.1):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


TEST_KEY = Ed25519PrivateKey.generate()


def offline_node(state) -> None:
    """node.json for a runtime with no control plane, pinning TEST_KEY as the signing key."""
    pem = TEST_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    state.save_node(
        {
            "server": "http://127.0.0.1:9",
            "node_id": "n",
            "credential": "efn_unused",
            "signing_key": pem.decode(),
        }
    )


def signed(model: dict, key: Ed25519PrivateKey = TEST_KEY) -> dict:
    """A model section with a manifest signed by `key`, as the control plane sends it."""
    m = manifest.build(
        name=model["name"], variant="custom", sha256=model["sha256"], size=None, key_id="test"
    )
    return {**model, "manifest": m, "signature": manifest.sign(m, key)}


class OnOffProxy:
    """A real TCP forwarder on loopback. `down()` closes the listener and drops connections
    (connection refused, like a stopped control plane); `up()` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.listener: socket.socket | None = None
        self.sent = bytearray()  # everything clients sent through the proxy
        self.received = bytearray()  # everything the upstream answered
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def down(self) -> None:
        with self.lock:
            if self.listener:
                # close() alone does not wake a thread blocked in accept(); shutdown() does.
                with contextlib.suppress(OSError):
                    self.listener.shutdown(socket.SHUT_RDWR)
                self.listener.close()
                self.listener = None
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b, seen in ((client, upstream, self.sent), (upstream, client, None)):
                threading.Thread(target=self._pipe, args=(a, b, seen), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, seen: bytearray | None) -> None:
        """Client to upstream (`seen`: what was sent) or, with None, upstream to client."""
        kept = self.received if seen is None else seen
        try:
            while data := src.recv(65536):
                kept += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


class CuttingProxy(OnOffProxy):
    """An OnOffProxy that drops the first connection once `cut_after` bytes have come back on it
    (a download interrupted half-way); later connections pass untouched."""

    def __init__(self, target_host: str, target_port: int, cut_after: int):
        self.cut_after = cut_after
        self.cuts = 0
        super().__init__(target_host, target_port)

    def _pipe(self, src: socket.socket, dst: socket.socket, seen: bytearray | None) -> None:
        if seen is not None:
            return OnOffProxy._pipe(self, src, dst, seen)
        passed = 0
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                passed += len(data)
                if passed > self.cut_after and self.cuts == 0:
                    self.cuts += 1
                    break
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class SlowProxy(OnOffProxy):
    """An OnOffProxy whose answers start `delay` seconds late (a slow upstream)."""

    def __init__(self, target_host: str, target_port: int, delay: float):
        self.delay = delay
        super().__init__(target_host, target_port)

    def _pipe(self, src: socket.socket, dst: socket.socket, seen: bytearray | None) -> None:
        if seen is None:
            time.sleep(self.delay)
        return OnOffProxy._pipe(self, src, dst, seen)
