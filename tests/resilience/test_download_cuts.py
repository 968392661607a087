"""A model download cut at random byte offsets, 20 times: the node keeps serving its previous model
throughout, resumes each time where it stopped (HTTP Range), verifies the whole file and only then
loads it; no half-written file is ever in use."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from agents import cli
from agents.runtime import Runtime, StateDir
from controlplane.nodes import layers, services
from controlplane.nodes.models import Node
from controlplane.registry import services as registry
from controlplane.registry.models import Artifact

from ..agent_helpers import OnOffProxy, sha256, wait_for
from .harness import report

pytestmark = pytest.mark.django_db(transaction=True)

CUTS = 20
AGENTS = {"helper": {"max_tokens": 8, "default": True}}


class ArtifactCuttingProxy(OnOffProxy):
    """A TCP forwarder that cuts the answer to a model download (GET .../artifacts/...) after a
    random number of bytes, `cuts` times; everything else (polls, reports) passes untouched."""

    def __init__(self, host: str, port: int, cuts: int, max_offset: int, rng: random.Random):
        self.remaining, self.max_offset, self.rng = cuts, max_offset, rng
        self.offsets: list[int] = []
        self.downloading: dict[int, bool] = {}  # upstream socket id -> a download is in flight
        super().__init__(host, port)

    def _pipe(self, src: socket.socket, dst: socket.socket, seen: bytearray | None) -> None:
        if seen is not None:  # client -> upstream: note which requests are downloads
            try:
                while data := src.recv(65536):
                    if b" /api/node/v1/artifacts/" in data:
                        self.downloading[id(dst)] = True
                    seen += data
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                self._close(src, dst)
            return
        passed, cut_at = 0, None
        try:
            while data := src.recv(65536):
                if cut_at is None and self.downloading.pop(id(src), False) and self.remaining:
                    self.remaining -= 1
                    cut_at = self.rng.randint(1, self.max_offset)
                    self.offsets.append(cut_at)
                    passed = 0
                if cut_at is not None and passed + len(data) >= cut_at:
                    dst.sendall(data[: cut_at - passed])
                    break
                dst.sendall(data)
                passed += len(data)
        except OSError:
            pass
        finally:
            self._close(src, dst)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def test_a_model_download_cut_twenty_times_resumes_verifies_and_never_serves_a_partial_file(
    live_server, north, alice, tmp_path, tiny_f32
):
    f32 = registry.do_register_artifact(tiny_f32, name="tiny", actor=alice)
    registry.run_quantization(registry.do_quantize(f32, ["Q8_0"], actor=alice)[0].pk)
    q8 = Artifact.objects.get(variant="Q8_0")
    north.poll_interval_s = 1
    north.save()

    def assign(variant: str) -> None:
        model = {"name": "tiny", "variant": variant, "n_ctx": 512}
        sections = {"model": model, "agents": AGENTS}
        layers.do_put_layer(north, name="base", scope="fleet", sections=sections, actor=alice)

    assign("Q8_0")
    token = services.do_create_enrollment_token(north, actor=alice)[1]
    u = urlsplit(live_server.url)
    size = Path(tiny_f32).stat().st_size
    proxy = ArtifactCuttingProxy(u.hostname, u.port, 0, size // (CUTS + 5), random.Random(20))
    state = tmp_path / "state"
    argv = ["--state-dir", str(state), "enroll", "--server", proxy.url, "--token", token]
    assert cli.main([*argv, "--name", "edge"]) == 0
    runtime = Runtime(StateDir(state), send_interval_s=0.2)
    runtime.start()
    in_use: list[str] = []
    watching = threading.Event()

    def watch() -> None:  # what the node serves, sampled all along
        while not watching.is_set():
            active = runtime.active
            if active is not None:
                in_use.append(active.model_digest)
            watching.wait(0.05)

    try:
        wait_for(lambda: runtime.active is not None, what="the first model applied")
        assert runtime.active.model_digest == f"sha256:{q8.sha256}"
        watcher = threading.Thread(target=watch)
        watcher.start()
        proxy.remaining = CUTS
        assign("F32")
        wait_for(
            lambda: runtime.active.model_digest == f"sha256:{f32.sha256}",
            timeout=180,
            what="the new model applied after the cuts",
        )
        watching.set()
        watcher.join()
        node = Node.objects.get(name="edge")
        final = state / "models" / f"{f32.sha256}.gguf"
        report(
            "model download cut",
            "download answer cut at a random byte offset (TCP proxy), then resumed with Range",
            len(proxy.offsets),
            offsets_bytes=f"{min(proxy.offsets)}-{max(proxy.offsets)} of {size}",
            served_partial=0,
            verified=sha256(final) == f32.sha256,
        )
        assert len(proxy.offsets) == CUTS
        assert sha256(final) == f32.sha256
        assert not final.with_suffix(".part").exists()
        # Only ever the old model or the new one, whole: nothing else was in use.
        assert set(in_use) <= {f"sha256:{q8.sha256}", f"sha256:{f32.sha256}"}
        assert in_use[0] == f"sha256:{q8.sha256}"
        wait_for(
            lambda: Node.objects.get(pk=node.pk).reported_model_digest == f"sha256:{f32.sha256}",
            what="the new model reported",
        )
        assert runtime.ask([{"role": "user", "content": "hi"}]).usage.completion_tokens > 0
    finally:
        watching.set()
        runtime.shutdown()
        proxy.down()
