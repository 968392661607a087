"""Resumable uploads of large model files: chunks at offsets, resuming after a break, nothing
received is lost, only the registry's writers upload, and the finished file is registered."""

from __future__ import annotations

import pytest

from controlplane.registry.models import Artifact

pytestmark = pytest.mark.django_db


def chunks(data: bytes, size: int):
    return [(i, data[i : i + size]) for i in range(0, len(data), size)]


def put(client, upload_id, offset, chunk):
    return client.client.put(
        f"/api/v1/models/uploads/{upload_id}?offset={offset}",
        data=chunk,
        content_type="application/octet-stream",
        headers=client.headers,
    )


def test_a_large_file_arrives_in_chunks_resumes_after_a_break_and_is_registered(
    fiona, admin_api, tiny_f32
):
    data = tiny_f32.read_bytes()
    api = admin_api(fiona)
    r = api.post("/models/uploads", {"size": len(data), "filename": "tiny-F32.gguf"})
    assert r.status_code == 201 and r.json()["offset"] == 0
    upload_id = r.json()["id"]
    parts = chunks(data, len(data) // 3 + 1)
    assert put(api, upload_id, 0, parts[0][1]).json()["offset"] == parts[1][0]
    # The connection broke; the client asks where to go on, and a retried chunk is refused.
    assert api.get(f"/models/uploads/{upload_id}").json()["offset"] == parts[1][0]
    again = put(api, upload_id, 0, parts[0][1])
    assert again.status_code == 409 and f"offset {parts[1][0]}" in again.json()["detail"]
    early = api.post(f"/models/uploads/{upload_id}/complete")
    assert early.status_code == 400 and "incomplete" in early.json()["detail"]
    for offset, chunk in parts[1:]:
        assert put(api, upload_id, offset, chunk).status_code == 200
    done = api.post(f"/models/uploads/{upload_id}/complete")
    assert done.status_code == 201, done.content
    artifact = Artifact.objects.get()
    assert done.json()["sha256"] == artifact.sha256 and artifact.size == len(data)
    assert api.get(f"/models/uploads/{upload_id}").status_code == 404  # cleaned up


def test_an_upload_refuses_what_would_pass_its_announced_size(fiona, admin_api):
    api = admin_api(fiona)
    upload_id = api.post("/models/uploads", {"size": 4}).json()["id"]
    r = put(api, upload_id, 0, b"12345")
    assert r.status_code == 400 and "past the announced size" in r.json()["detail"]
    assert api.get(f"/models/uploads/{upload_id}").json()["offset"] == 0


def test_a_finished_upload_that_is_not_gguf_is_refused_with_the_reason(fiona, admin_api):
    api = admin_api(fiona)
    upload_id = api.post("/models/uploads", {"size": 4}).json()["id"]
    put(api, upload_id, 0, b"nope")
    r = api.post(f"/models/uploads/{upload_id}/complete")
    assert r.status_code == 400 and "GGUF" in r.json()["detail"]


def test_only_registry_writers_upload_and_only_their_own_uploads(
    fiona, olivia, victor, mallory, admin_api
):
    assert admin_api(olivia).post("/models/uploads", {"size": 10}).status_code == 403
    assert admin_api(mallory).post("/models/uploads", {"size": 10}).status_code == 404
    upload_id = admin_api(fiona).post("/models/uploads", {"size": 10}).json()["id"]
    assert admin_api(victor).get(f"/models/uploads/{upload_id}").status_code == 404
    assert put(admin_api(olivia), upload_id, 0, b"x").status_code == 404


def test_unfinished_uploads_are_purged_after_their_time(fiona, admin_api):
    import time

    from controlplane.registry import uploads

    upload_id = admin_api(fiona).post("/models/uploads", {"size": 10}).json()["id"]
    assert uploads.purge() == 0
    assert uploads.purge(now=time.time() + uploads.UPLOAD_TTL_S + 1) == 1
    assert admin_api(fiona).get(f"/models/uploads/{upload_id}").status_code == 404


def test_a_person_holds_a_bounded_number_of_unfinished_uploads(fiona, alice, admin_api):
    from controlplane.registry import uploads

    for _ in range(uploads.MAX_OPEN_PER_PERSON):
        assert admin_api(fiona).post("/models/uploads", {"size": 10}).status_code == 201
    r = admin_api(fiona).post("/models/uploads", {"size": 10})
    assert r.status_code == 409 and "unfinished uploads" in r.json()["detail"]
    assert admin_api(alice).post("/models/uploads", {"size": 10}).status_code == 201
