"""The model registry: registration, quantization on the task worker, variant choice per node,
downloads with Range, drift."""

from __future__ import annotations

import hashlib
import struct
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from controlplane import signing
from controlplane.audit.models import AuditRecord
from controlplane.nodes import desired_state, layers
from controlplane.nodes.models import Node
from controlplane.registry import services as registry
from controlplane.registry.models import Artifact, JobStatus, QuantizationJob
from controlplane.registry.resolver import MB, Variant, choose
from wire import manifest

from .conftest import enroll


def run_worker():
    call_command(
        "db_worker",
        "--batch",
        "--no-startup-delay",
        "--queue-name",
        "*",
        "--no-reload",
        verbosity=0,
    )


@pytest.fixture
def tiny(db, alice, tiny_f32):
    return registry.do_register_artifact(tiny_f32, name="tiny", actor=alice)


def test_registering_a_gguf_reads_its_metadata_and_signs_a_manifest(alice, tiny_f32, db):
    out = StringIO()
    call_command("register_model", str(tiny_f32), "--name", "tiny", stdout=out)
    assert "registered tiny:F32 (llama" in out.getvalue()
    a = Artifact.objects.get(name="tiny")
    assert (a.variant, a.architecture, a.context_length, a.n_layer, a.n_embd) == (
        "F32",
        "llama",
        1024,
        2,
        256,
    )
    assert (
        a.sha256 == hashlib.sha256(tiny_f32.read_bytes()).hexdigest()
        and a.size == tiny_f32.stat().st_size
    )
    assert 31 < a.bits_per_weight < 33 and a.parameters > 1_000_000
    assert "im_start" in a.chat_template
    assert (
        manifest.check(a.manifest, a.signature, signing.public_pem(), a.sha256)["variant"] == "F32"
    )
    assert AuditRecord.objects.filter(action="artifact.register").count() == 1
    # Registering the same file again is idempotent.
    call_command("register_model", str(tiny_f32), "--name", "tiny", stdout=StringIO())
    assert Artifact.objects.count() == 1


def test_a_file_that_is_not_gguf_is_refused_with_a_clear_message(alice, admin_api, tmp_path, db):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 definitely a zip file" * 100)
    with pytest.raises(CommandError, match="not a valid GGUF file: the file does not start with"):
        call_command("register_model", str(bogus))
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    upload = SimpleUploadedFile("cut.gguf", truncated.read_bytes())
    r = admin_api(alice).client.post("/api/v1/models", {"file": upload})
    assert r.status_code == 400 and r.json()["detail"].startswith("not a valid GGUF file")
    assert not Artifact.objects.exists()


def _header(tensors: int, entries: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, entries)


def _entry(key: bytes, kind: int, value: bytes) -> bytes:
    return struct.pack("<Q", len(key)) + key + struct.pack("<I", kind) + value


@pytest.mark.parametrize(
    "crafted, message",
    [
        (lambda good: _header(2**40, 0), "declares 1099511627776 tensors"),
        (lambda good: _header(0, 2**40), "declares 1099511627776 metadata entries"),
        (lambda good: _header(0, 1) + struct.pack("<Q", 2**60) + b"k", "claims a 1152921504606"),
        (  # an array of 2**50 uint32: the gguf reader spent minutes on it
            lambda good: _header(0, 1) + _entry(b"k", 9, struct.pack("<IQ", 4, 2**50)),
            "metadata 'k' claims 1125899906842624 elements",
        ),
        (
            lambda good: _header(0, 1) + _entry(b"name", 8, struct.pack("<Q", 99) + b"x"),
            "metadata 'name' claims a 99-byte string",
        ),
        (lambda good: good[: len(good) // 2], "the tensor data is truncated"),
        (lambda good: b"GGUF" + struct.pack("<I", 7) + good[8:], "GGUF version 7"),
    ],
)
def test_a_crafted_gguf_is_refused_at_once_saying_what_lies(
    alice, admin_api, tiny_f32, tmp_path, db, crafted, message
):
    upload = SimpleUploadedFile("crafted.gguf", crafted(tiny_f32.read_bytes()))
    r = admin_api(alice).client.post("/api/v1/models", {"file": upload})
    assert r.status_code == 400 and message in r.json()["detail"], r.content
    assert not Artifact.objects.exists()


def test_an_admin_uploads_a_model_through_the_api(alice, admin_api, tiny_f32, db):
    upload = SimpleUploadedFile("tiny.gguf", tiny_f32.read_bytes())
    r = admin_api(alice).client.post("/api/v1/models", {"file": upload, "name": "Tiny Chat"})
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["name"], body["variant"], body["has_chat_template"]) == ("tiny-chat", "F32", True)
    r = admin_api(alice).get("/models/tiny-chat/variants/F32")
    assert r.status_code == 200 and r.json()["sha256"] == body["sha256"]


@pytest.mark.django_db(transaction=True)  # the worker closes its connection when done
def test_quantization_runs_on_the_task_worker_and_records_size_and_bits_per_weight(
    alice, admin_api, tiny
):
    r = admin_api(alice).post("/models/tiny/quantize", {"variants": ["Q8_0", "Q4_K_M"]})
    assert r.status_code == 202, r.content
    jobs = r.json()
    assert [j["status"] for j in jobs] == ["queued", "queued"]
    run_worker()
    for job in jobs:
        r = admin_api(alice).get(f"/quantization-jobs/{job['id']}")
        body = r.json()
        assert body["status"] == "done" and body["progress"] == 1.0, body
        assert body["result"]["source"] == "F32"
    q8, q4 = Artifact.objects.get(variant="Q8_0"), Artifact.objects.get(variant="Q4_K_M")
    assert tiny.size > q8.size > q4.size
    assert tiny.bits_per_weight > q8.bits_per_weight > q4.bits_per_weight
    # Asking again for an existing variant, or from a quantized source, is a clear 4xx.
    assert admin_api(alice).post("/models/tiny/quantize", {"variants": ["Q8_0"]}).status_code == 409
    r = admin_api(alice).post("/models/tiny/quantize", {"source": "Q8_0", "variants": ["Q2_K"]})
    assert r.status_code == 400 and "already quantized" in r.json()["detail"]
    r = admin_api(alice).post("/models/tiny/quantize", {"variants": ["Q1_X"]})
    assert r.status_code == 400 and "unknown variant" in r.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_a_failed_quantization_is_recorded_on_the_job(alice, tiny, monkeypatch):
    (job,) = registry.do_quantize(tiny, ["Q2_K"], actor=alice)

    def broken(*args, **kwargs):
        raise RuntimeError("llama_model_quantize failed with code 1 for Q2_K")

    monkeypatch.setattr(registry, "quantize", broken)
    run_worker()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "code 1" in job.error
    assert not Artifact.objects.filter(variant="Q2_K").exists()


def variant(name: str, size_mb: float, bpw: float) -> Variant:
    return Variant("m", name, name.lower() * 8, int(size_mb * MB), bpw, 32, 4096, 32, 8, {}, "")


LADDER = [variant("Q8_0", 7700, 8.5), variant("Q4_K_M", 4400, 4.85), variant("Q2_K", 2900, 3.35)]


def test_auto_takes_the_preferred_variant_where_it_fits_and_a_smaller_one_where_not():
    # KV cache: 2 * 32 layers * 4096 ctx * 1024 * 2 bytes = 512 MB.
    c = choose(LADDER, "auto", {"ram_mb": 16384}, n_ctx=4096)
    assert c.variant.variant == "Q4_K_M"  # the balanced default, though Q8_0 would fit
    assert "512.0 MB KV cache for n_ctx 4096" in c.explanation
    c = choose(LADDER, "auto", {"ram_mb": 16384}, n_ctx=4096, prefer="Q8_0")
    assert c.variant.variant == "Q8_0"
    c = choose(LADDER, "auto", {"ram_mb": 8192}, n_ctx=4096, prefer="Q8_0")
    assert c.variant.variant == "Q4_K_M"
    assert "Q8_0, the preferred variant, needs 8,212.0 MB" in c.explanation
    c = choose(LADDER, "auto", {"ram_mb": 6144}, n_ctx=4096)
    assert c.variant.variant == "Q2_K" and "Q4_K_M, the preferred variant, needs" in c.explanation
    # A preference the registry lacks: the closest below it (Q5_K_M sits between Q8_0 and Q4_K_M).
    c = choose(LADDER, "auto", {"ram_mb": 16384}, n_ctx=4096, prefer="Q5_K_M")
    assert c.variant.variant == "Q4_K_M" and "no Q5_K_M variant, the preferred one" in c.explanation
    # Nothing at or below the preference: the closest above it.
    assert choose(LADDER[:1], "auto", {"ram_mb": 16384}, n_ctx=4096).variant.variant == "Q8_0"
    # A GPU counts only when every layer is offloaded.
    gpu = {"ram_mb": 4096, "vram_mb": 24576}
    assert choose(LADDER, "auto", gpu, n_ctx=4096, n_gpu_layers=-1, prefer="Q8_0").variant
    assert not choose(LADDER[:1], "auto", gpu, n_ctx=4096, prefer="Q8_0").variant
    c = choose(LADDER, "auto", {"ram_mb": 2048}, n_ctx=4096)
    assert c.variant is None and c.explanation.startswith(
        "no variant fits: the smallest, Q2_K, needs"
    )
    assert choose(LADDER, "auto", {}, n_ctx=512).variant is None
    assert choose(LADDER, "Q2_K", {"ram_mb": 1}, n_ctx=512).variant.variant == "Q2_K"
    assert "has no Q5_K_M variant" in choose(LADDER, "Q5_K_M", {}, n_ctx=512).explanation


def test_auto_runs_full_precision_only_when_asked_or_when_nothing_else_is_registered():
    f32 = variant("F32", 26000, 32.0)
    roomy = {"ram_mb": 65536}
    assert choose([f32, *LADDER], "auto", roomy, n_ctx=4096).variant.variant == "Q4_K_M"
    assert choose([f32, *LADDER], "auto", roomy, n_ctx=4096, prefer="F32").variant is f32
    c = choose([f32], "auto", roomy, n_ctx=4096)
    assert c.variant is f32 and "no quantized variant is registered" in c.explanation


def test_auto_skips_variants_the_fleet_measured_below_the_tokens_per_s_floor():
    roomy = {"ram_mb": 16384}
    q8, q4 = LADDER[0].sha256[:12], LADDER[1].sha256[:12]
    c = choose(
        LADDER, "auto", roomy, n_ctx=4096, prefer="Q8_0", speeds={q8: 4.0}, min_tokens_per_s=8
    )
    assert c.variant.variant == "Q4_K_M"  # unmeasured: not skipped
    assert "Q8_0 runs at 4.0 tokens/s on this hardware class, under the floor of 8" in (
        c.explanation
    )
    fast_enough = {q8: 9.0, q4: 20.0}
    c = choose(
        LADDER, "auto", roomy, n_ctx=4096, prefer="Q8_0", speeds=fast_enough, min_tokens_per_s=8
    )
    assert c.variant.variant == "Q8_0"
    c = choose(LADDER[:2], "auto", roomy, n_ctx=4096, speeds={q8: 1.0, q4: 2.0}, min_tokens_per_s=8)
    assert c.variant is None and c.explanation.startswith("no variant fits fast enough")


def test_the_floor_reads_the_tokens_per_s_nodes_of_the_same_hardware_class_reported(
    alice, north, tiny
):
    from django.utils import timezone

    from controlplane.nodes.models import MetricRollup

    for variant in ("Q8_0", "Q4_K_M"):
        registry.run_quantization(registry.do_quantize(tiny, [variant], actor=alice)[0].pk)
    q8 = Artifact.objects.get(name="tiny", variant="Q8_0")
    xeon = {"ram_mb": 64, "cpu_model": "Xeon", "cpu_cores": 4}
    busy, _ = enroll(north, "busy")
    fresh, _ = enroll(north, "fresh")
    other, _ = enroll(north, "other-cpu")
    Node.objects.filter(pk=busy.pk).update(hardware=xeon)
    Node.objects.filter(pk=fresh.pk).update(hardware=xeon)
    Node.objects.filter(pk=other.pk).update(hardware={**xeon, "cpu_model": "Epyc"})
    MetricRollup.objects.create(
        node=busy,
        name=f"model.{q8.sha256[:12]}.tokens_per_s",
        minute=timezone.now(),
        count=4,
        total=12.0,
        min=2,
        max=4,
    )
    layers.do_put_layer(
        north,
        name="model",
        scope="fleet",
        sections={
            "model": {"name": "tiny", "variant": "auto", "prefer": "Q8_0", "min_tokens_per_s": 5}
        },
        actor=alice,
    )
    choice = dict(Node.objects.values_list("name", "model_choice"))
    assert choice["fresh"].startswith("Q4_K_M") and "3.0 tokens/s" in choice["fresh"]
    assert choice["other-cpu"].startswith("Q8_0")  # another class: nothing measured there


def test_an_auto_assignment_resolves_per_node_and_no_fit_is_a_visible_error(
    alice, admin_api, north, tiny
):
    registry.run_quantization(registry.do_quantize(tiny, ["Q4_K_M"], actor=alice)[0].pk)
    q4 = Artifact.objects.get(variant="Q4_K_M")
    big, _ = enroll(north, "big")
    small, _ = enroll(north, "small")
    tiny_node, _ = enroll(north, "pocket")
    # KV cache at n_ctx 2048: 2 * 2 layers * 2048 * 256 * 2 bytes = 4 MB; F32 is 6 MB, Q4_K_M 1 MB;
    # 75% of the memory may be used.
    Node.objects.filter(pk=big.pk).update(hardware={"ram_mb": 32})
    Node.objects.filter(pk=small.pk).update(hardware={"ram_mb": 10})
    Node.objects.filter(pk=tiny_node.pk).update(hardware={"ram_mb": 4})
    layers.do_put_layer(
        north,
        name="model",
        scope="fleet",
        sections={"model": {"name": "tiny", "variant": "auto"}},
        actor=alice,
    )
    docs = {
        n.name: desired_state.document(n)["model"] for n in Node.objects.select_related("fleet")
    }
    assert docs["big"]["sha256"] == q4.sha256 and docs["big"]["url"] == f"artifacts/{q4.sha256}"
    assert docs["small"]["sha256"] == q4.sha256 and docs["small"]["choice"].startswith("Q4_K_M")
    assert docs["pocket"]["error"].startswith("model 'tiny': no variant fits")
    assert manifest.check(
        docs["small"]["manifest"], docs["small"]["signature"], signing.public_pem(), q4.sha256
    )
    pocket = admin_api(alice).get(f"/nodes/{tiny_node.pk}").json()
    assert pocket["desired_model_digest"] == "" and "no variant fits" in pocket["model_choice"]
    drift = {d["name"]: d["reason"] for d in admin_api(alice).get("/nodes/drift").json()}
    assert drift["pocket"].startswith("no model can run here: model 'tiny': no variant fits")


def test_a_new_variant_changes_the_revision_only_of_nodes_whose_choice_changes(alice, north, tiny):
    big, _ = enroll(north, "big")
    small, _ = enroll(north, "small")
    pinned, _ = enroll(north, "pinned")
    Node.objects.filter(pk__in=[big.pk, pinned.pk]).update(hardware={"ram_mb": 32})
    Node.objects.filter(pk=small.pk).update(hardware={"ram_mb": 10})
    layers.do_put_layer(
        north,
        name="model",
        scope="fleet",
        sections={"model": {"name": "tiny", "variant": "auto"}},
        actor=alice,
    )
    layers.do_put_layer(
        north,
        name="pin",
        scope="node",
        node=pinned,
        sections={"model": {"name": "tiny", "variant": "F32"}},
        actor=alice,
    )
    assert "no quantized variant is registered" in Node.objects.get(name="big").model_choice
    before = dict(Node.objects.values_list("name", "desired_revision"))
    registry.run_quantization(registry.do_quantize(tiny, ["Q4_K_M"], actor=alice)[0].pk)
    after = dict(Node.objects.values_list("name", "desired_revision"))
    assert after["pinned"] == before["pinned"]  # F32, named
    assert after["big"] == before["big"] + 1  # F32 only while nothing quantized existed
    assert after["small"] == before["small"] + 1  # nothing fitted; now Q4_K_M does
    assert Node.objects.get(name="small").model_choice.startswith("Q4_K_M")


def test_nodes_download_artifacts_with_range_requests(north_node, node_api, tiny):
    _, cred = north_node
    data = Artifact.objects.get(pk=tiny.pk)
    full = node_api(cred).get(f"/artifacts/{tiny.sha256}")
    assert full.status_code == 200 and full["Accept-Ranges"] == "bytes"
    body = b"".join(full.streaming_content)
    assert hashlib.sha256(body).hexdigest() == data.sha256
    part = node_api(cred).get(f"/artifacts/{tiny.sha256}", Range="bytes=1000-")
    assert (
        part.status_code == 206
        and part["Content-Range"] == f"bytes 1000-{data.size - 1}/{data.size}"
    )
    assert b"".join(part.streaming_content) == body[1000:]
    r = node_api(cred).get(f"/artifacts/{tiny.sha256}", Range=f"bytes={data.size}-")
    assert r.status_code == 416 and r["Content-Range"] == f"bytes */{data.size}"
    assert node_api(cred).get(f"/artifacts/{tiny.sha256}", Range="bytes=0-1,5-9").status_code == 400
    assert node_api(cred).get(f"/artifacts/{'0' * 64}").status_code == 404
    assert node_api().get(f"/artifacts/{tiny.sha256}").status_code == 401


def test_nodes_get_the_signing_key_at_enrollment_and_on_request(north, node_api, north_node):
    _, cred = north_node
    r = node_api(cred).get("/signing-key")
    assert r.status_code == 200 and r.json()["public_key"] == signing.public_pem()


def test_registry_permissions(admin_api, alice, olivia, victor, mallory, carol, tiny_f32, tiny):
    upload = lambda: {"file": SimpleUploadedFile("x.gguf", tiny_f32.read_bytes()), "name": "again"}  # noqa: E731
    for user, list_status, upload_status in [
        (alice, 200, 201),
        (olivia, 200, 403),
        (carol, 200, 403),
        (victor, 200, 403),
        (mallory, 404, 404),
    ]:
        assert admin_api(user).get("/models").status_code == list_status, user
        assert admin_api(user).get("/models/tiny/variants/F32").status_code == list_status, user
        r = admin_api(user).client.post("/api/v1/models", upload())
        assert r.status_code == upload_status, (user, r.content)
        r = admin_api(user).post("/models/tiny/quantize", {"variants": ["Q2_K"]})
        assert r.status_code in ((202, 409) if user is alice else (upload_status,)), user
    assert QuantizationJob.objects.count() == 1
    job = QuantizationJob.objects.get()
    assert admin_api(victor).get(f"/quantization-jobs/{job.pk}").status_code == 200
    assert admin_api(mallory).get(f"/quantization-jobs/{job.pk}").status_code == 404
