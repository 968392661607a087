"""A real agent and the registry: download (interrupted once, resumed with Range), verify the signed
manifest and sha256, load the variant chosen for it; refuse and report a tampered manifest or file.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.files.storage import storages

from agents import cli
from agents.runtime import Runtime, StateDir
from controlplane.nodes import desired_state, layers, services
from controlplane.nodes.models import Node, NodeEventRecord
from controlplane.registry import services as registry
from controlplane.registry.models import Artifact

from .agent_helpers import CuttingProxy, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

AGENTS = {"helper": {"max_tokens": 8, "default": True}}


def test_an_agent_resumes_a_cut_download_verifies_and_loads_its_variant_and_refuses_tampering(
    live_server, north, alice, tmp_path, tiny_f32
):
    f32 = registry.do_register_artifact(tiny_f32, name="tiny", actor=alice)
    registry.run_quantization(registry.do_quantize(f32, ["Q4_K_M"], actor=alice)[0].pk)
    q4 = Artifact.objects.get(variant="Q4_K_M")
    north.poll_interval_s = 1
    north.save()
    layers.do_put_layer(
        north,
        name="base",
        scope="fleet",
        sections={
            "model": {"name": "tiny", "variant": "auto", "prefer": "F32", "n_ctx": 512},
            "agents": AGENTS,
        },
        actor=alice,
    )
    token = services.do_create_enrollment_token(north, actor=alice)[1]
    u = urlsplit(live_server.url)
    proxy = CuttingProxy(u.hostname, u.port, cut_after=1_000_000)
    state = tmp_path / "state"
    assert (
        cli.main(
            [
                "--state-dir",
                str(state),
                "enroll",
                "--server",
                proxy.url,
                "--token",
                token,
                "--name",
                "edge",
            ]
        )
        == 0
    )
    runtime = Runtime(StateDir(state), send_interval_s=0.2)
    runtime.start()
    try:
        node = wait_for(
            lambda: (
                Node.objects.filter(name="edge", reported_health="ok")
                .exclude(reported_model_digest="")
                .first()
            ),
            what="the model applied",
        )
        assert node.model_choice.startswith("F32")  # asked for, and it fits here
        assert node.reported_model_digest == node.desired_model_digest == f"sha256:{f32.sha256}"
        assert proxy.cuts == 1 and b"range: bytes=" in bytes(proxy.sent).lower()
        assert runtime.ask([{"role": "user", "content": "hi"}]).usage.completion_tokens > 0

        # A manifest whose signature does not verify (someone rewrote it in the database).
        Artifact.objects.filter(pk=q4.pk).update(signature=f32.signature)
        layers.do_put_layer(
            north,
            name="base",
            scope="fleet",
            sections={
                "model": {"name": "tiny", "variant": "Q4_K_M", "n_ctx": 512},
                "agents": AGENTS,
            },
            actor=alice,
        )
        node = wait_for(
            lambda: Node.objects.filter(name="edge", reported_health="error").first(),
            what="the refusal reported",
        )
        assert "signature does not verify" in node.reported_errors[0]
        assert node.reported_model_digest == f"sha256:{f32.sha256}"  # still serving F32
        wait_for(
            lambda: NodeEventRecord.objects.filter(kind="model.refused").exists(), what="event"
        )

        # A file changed in storage: the signature is fine, the sha256 is not.
        Artifact.objects.filter(pk=q4.pk).update(signature=q4.signature)
        path = storages["artifacts"].path(q4.file)
        original = Path(path).read_bytes()
        with open(path, "r+b") as f:
            f.seek(len(original) // 2)
            f.write(b"\x00" * 64)
        desired_state.refresh(north)
        node = wait_for(
            lambda: Node.objects.filter(
                name="edge", reported_errors__icontains="failed verification"
            ).first(),
            what="the sha256 refusal reported",
        )
        assert node.reported_model_digest == f"sha256:{f32.sha256}"
        assert runtime.active.model_digest == f"sha256:{f32.sha256}"

        # Put right, the node moves on to the variant.
        with open(path, "wb") as f:
            f.write(original)
        layers.do_put_layer(
            north,
            name="base",
            scope="fleet",
            sections={
                "model": {"name": "tiny", "variant": "Q4_K_M", "n_ctx": 256},
                "agents": AGENTS,
            },
            actor=alice,
        )
        wait_for(
            lambda: Node.objects.filter(
                name="edge", reported_model_digest=f"sha256:{q4.sha256}", reported_health="ok"
            ).exists(),
            what="Q4_K_M loaded",
        )
    finally:
        runtime.shutdown()
        proxy.down()
