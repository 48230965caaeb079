"""Uploading evidence through HTTP: storage, deduplication, refusals leave nothing behind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from src.app.evidence.service import blob_key
from tests.buildings.helpers import assert_error, parse_timestamp
from tests.evidence import files
from tests.evidence.conftest import EvidenceApi, Site


async def test_upload_jpeg_keeps_the_original_and_reads_exif(evidence_api: EvidenceApi, site: Site):
    data = files.jpeg_with_exif()
    tech = site.tenant.technician
    response = await evidence_api.upload(
        tech,
        site.session_id,
        data,
        asset_id=site.asset_id,
        captured_at="2026-11-30T00:15:00Z",
        device_id="tablet-7",
        metadata='{"note": "gauge in the green"}',
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/evidence/{body['id']}"
    assert body["sha256"] == files.sha256(data)
    assert body["size_bytes"] == len(data)
    assert body["content_type"] == "image/jpeg"
    assert body["filename"] == "photo.jpg"
    assert body["session_id"] == site.session_id
    assert body["asset_id"] == site.asset_id
    assert body["kind"] == "photo"
    assert body["device_id"] == "tablet-7"
    assert body["metadata"] == {"note": "gauge in the green"}
    assert body["uploaded_by"] == str(tech.id)
    assert body["flags"] == []
    assert parse_timestamp(body["captured_at"]).isoformat() == "2026-11-30T00:15:00+00:00"
    assert body["embedded"] == {
        "width": 640,
        "height": 480,
        "captured_at_local": "2026-11-30T10:15:00",
        "utc_offset": "+10:00",
        "camera_make": "FireCam",
        "camera_model": "FC-1",
        "gps": {"latitude": files.LATITUDE, "longitude": files.LONGITUDE, "altitude_m": 12.5},
        "image_readable": None,
    }
    blob = evidence_api.root / "objects" / blob_key(site.tenant.organisation_id, body["sha256"])
    assert blob.read_bytes() == data  # byte for byte: EXIF kept, nothing stripped
    assert evidence_api.stored_files() == [blob]

    fetched = await evidence_api.client.get(f"/v1/evidence/{body['id']}", headers=tech.headers)
    assert fetched.status_code == 200
    assert fetched.json() == body


@pytest.mark.parametrize(
    ("make", "kind", "mime"),
    [
        (files.png, "photo", "image/png"),
        (files.heic, "photo", "image/heic"),
        (files.pdf, "document", "application/pdf"),
    ],
)
async def test_other_allowed_types(evidence_api: EvidenceApi, site: Site, make, kind, mime):
    data = make()
    response = await evidence_api.upload(
        site.tenant.technician, site.session_id, data, kind=kind, filename="x"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["content_type"] == mime
    if mime == "image/heic":
        assert body["embedded"]["gps"]["latitude"] == files.LATITUDE
        assert body["embedded"]["camera_model"] == "FC-1"
    if mime == "application/pdf":
        assert body["embedded"] == {k: None for k in body["embedded"]}


async def test_replay_with_the_same_key_stores_one_blob(evidence_api: EvidenceApi, site: Site):
    data = files.jpeg_with_exif(seed=1)
    tech = site.tenant.technician
    first = await evidence_api.upload(tech, site.session_id, data, key="photo-1")
    again = await evidence_api.upload(tech, site.session_id, data, key="photo-1")
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert await evidence_api.count(site.tenant.organisation_id) == 1
    assert len(evidence_api.stored_files()) == 1

    # Same key, other bytes: refused, and nothing kept.
    other = files.jpeg_with_exif(seed=2)
    assert_error(await evidence_api.upload(tech, site.session_id, other, key="photo-1"), 422)
    assert len(evidence_api.stored_files()) == 1


async def test_duplicates_share_one_blob_and_differing_metadata_gets_a_record(
    evidence_api: EvidenceApi, site: Site
):
    data = files.jpeg_with_exif(seed=3)
    tech = site.tenant.technician
    first = await evidence_api.upload(tech, site.session_id, data)
    # A retry that lost its key: the same upload, found, not stored twice.
    same = await evidence_api.upload(tech, site.session_id, data)
    assert same.status_code == 200
    assert same.json()["id"] == first.json()["id"]
    # The same photo for another asset is another record, on the same blob.
    other = await evidence_api.upload(tech, site.session_id, data, asset_id=site.asset_id)
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]
    assert await evidence_api.count(site.tenant.organisation_id) == 2
    assert len(evidence_api.stored_files()) == 1


async def test_torn_upload_leaves_nothing(evidence_api: EvidenceApi, site: Site):
    data = files.jpeg_with_exif(seed=4)
    torn = data[: len(data) // 2]  # the device hashed the whole photo; half arrived
    response = await evidence_api.upload(
        site.tenant.technician, site.session_id, torn, sha256=files.sha256(data)
    )
    body = assert_error(response, 422)
    assert files.sha256(data) in body["detail"]
    assert await evidence_api.count(site.tenant.organisation_id) == 0
    assert evidence_api.stored_files() == []


async def test_renamed_executable_is_415(evidence_api: EvidenceApi, site: Site):
    response = await evidence_api.upload(
        site.tenant.technician, site.session_id, files.windows_exe(), filename="photo.jpg"
    )
    assert_error(response, 415)
    assert evidence_api.stored_files() == []
    assert await evidence_api.count(site.tenant.organisation_id) == 0


async def test_kind_must_suit_the_file(evidence_api: EvidenceApi, site: Site):
    response = await evidence_api.upload(
        site.tenant.technician, site.session_id, files.pdf(), kind="photo"
    )
    assert "needs an image" in assert_error(response, 422)["detail"]
    assert evidence_api.stored_files() == []


async def test_roles_and_tenancy(evidence_api: EvidenceApi, site: Site, make_tenant):
    data = files.png(seed=5)
    assert_error(await evidence_api.upload(site.tenant.viewer, site.session_id, data), 403)
    stranger = await make_tenant()
    # Another organisation's session: 404, as if it did not exist.
    assert_error(await evidence_api.upload(stranger.technician, site.session_id, data), 404)
    assert evidence_api.stored_files() == []

    created = await evidence_api.upload(site.tenant.admin, site.session_id, data)
    assert created.status_code == 201
    evidence_id = created.json()["id"]
    client = evidence_api.client
    for path in ("", "/content", "/content?variant=thumb"):
        assert_error(
            await client.get(f"/v1/evidence/{evidence_id}{path}", headers=stranger.viewer.headers),
            404,
        )
        ok = await client.get(
            f"/v1/evidence/{evidence_id}{path}", headers=site.tenant.viewer.headers
        )
        assert ok.status_code == 200
    for path in (
        f"/v1/tests/sessions/{site.session_id}/evidence",
        f"/v1/assets/{site.asset_id}/evidence",
    ):
        assert_error(await client.get(path, headers=stranger.viewer.headers), 404)


async def test_completed_session_takes_evidence_only_from_admins(
    evidence_api: EvidenceApi, site: Site
):
    tech, admin = site.tenant.technician, site.tenant.admin
    client = evidence_api.client
    for status in ("scheduled", "in_progress", "completed"):
        moved = await client.patch(
            f"/v1/tests/sessions/{site.session_id}", json={"status": status}, headers=admin.headers
        )
        assert moved.status_code == 200
    data = files.pdf("Late paperwork")
    body = assert_error(
        await evidence_api.upload(tech, site.session_id, data, kind="document"), 409
    )
    assert "only an admin" in body["detail"]
    assert evidence_api.stored_files() == []
    late = await evidence_api.upload(admin, site.session_id, data, kind="document")
    assert late.status_code == 201


async def test_bad_forms(evidence_api: EvidenceApi, site: Site):
    tech = site.tenant.technician
    client = evidence_api.client
    data = files.png(seed=6)
    # No Idempotency-Key.
    response = await client.post(
        "/v1/evidence",
        data={"session_id": site.session_id, "kind": "photo", "sha256": files.sha256(data)},
        files={"file": ("a.png", data)},
        headers=tech.headers,
    )
    assert_error(response, 400)
    # Not multipart.
    response = await client.post(
        "/v1/evidence",
        content=data,
        headers={**tech.headers, "Idempotency-Key": "k", "Content-Type": "image/png"},
    )
    assert_error(response, 415)
    # Invalid fields: one pointer each.
    body = assert_error(
        await evidence_api.upload(
            tech, "not-a-uuid", data, kind="selfie", captured_at="2026-01-01T00:00:00"
        ),
        422,
    )
    pointers = {error["pointer"] for error in body["errors"]}
    assert pointers == {"/session_id", "/kind", "/captured_at"}
    body = assert_error(await evidence_api.upload(tech, site.session_id, data, metadata="[1]"), 422)
    assert body["errors"][0]["pointer"] == "/metadata"
    body = assert_error(await evidence_api.upload(tech, site.session_id, data, colour="red"), 422)
    assert "colour" in body["detail"]
    # An asset of another building than the session's.
    other = await client.post(
        "/v1/buildings",
        json={"name": "Other", "address": "2 Test St", "building_type": "office"},
        headers=site.tenant.admin.headers,
    )
    asset = await client.post(
        f"/v1/buildings/{other.json()['id']}/assets",
        json={"asset_type": "fire_door"},
        headers=site.tenant.admin.headers,
    )
    assert_error(
        await evidence_api.upload(tech, site.session_id, data, asset_id=asset.json()["id"]), 422
    )
    assert_error(await evidence_api.upload(tech, str(uuid.uuid4()), data), 404)
    assert evidence_api.stored_files() == []


async def test_oversized_upload_is_refused_without_reading_it(
    evidence_api: EvidenceApi, site: Site
):
    """51 MiB against the 50 MiB default, sent chunked (no Content-Length): the server
    stops pulling the body just past the limit and keeps nothing."""
    limit = evidence_api.app.state.settings.max_evidence_bytes
    assert limit == 50 * 1024 * 1024
    boundary = "bnd" + uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="session_id"\r\n\r\n{site.session_id}\r\n'
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="kind"\r\n\r\nphoto\r\n'
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="sha256"\r\n\r\n{"0" * 64}\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'
    ).encode()
    chunk = b"\xff\xd8\xff" + bytes(64 * 1024 - 3)
    total = 51 * 1024 * 1024
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield head
        while sent < total:
            sent += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await evidence_api.client.post(
        "/v1/evidence",
        content=body(),
        headers={
            **site.tenant.technician.headers,
            "Idempotency-Key": "big",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    assert_error(response, 413)
    # The server read at most one chunk past the limit before refusing.
    assert limit < sent <= limit + len(chunk)
    assert evidence_api.stored_files() == []
    assert await evidence_api.count(site.tenant.organisation_id) == 0


async def test_oversized_content_length_is_refused_before_reading(
    evidence_api: EvidenceApi, site: Site
):
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        sent += 1
        yield b"x"

    response = await evidence_api.client.post(
        "/v1/evidence",
        content=body(),
        headers={
            **site.tenant.technician.headers,
            "Idempotency-Key": "big",
            "Content-Type": "multipart/form-data; boundary=x",
            "Content-Length": str(51 * 1024 * 1024),
        },
    )
    assert_error(response, 413)
    assert sent == 0
