"""Reading evidence back: ETag, ranges, thumbnails, damage detection, lists and flags."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from src.app.evidence.service import blob_key, thumbnail_key
from tests.buildings.helpers import assert_error, walk
from tests.evidence import files
from tests.evidence.conftest import EvidenceApi, Site
from tests.evidence.s3 import locked_bucket_settings


async def uploaded(api: EvidenceApi, site: Site, data: bytes, **fields: Any) -> dict[str, Any]:
    response = await api.upload(site.tenant.technician, site.session_id, data, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_content_whole_and_ranges(evidence_api: EvidenceApi, site: Site):
    data = files.jpeg_with_exif(seed=10)
    evidence = await uploaded(evidence_api, site, data, filename="Gauge é.jpg")
    url = f"/v1/evidence/{evidence['id']}/content"
    headers = site.tenant.viewer.headers
    client = evidence_api.client

    whole = await client.get(url, headers=headers)
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["etag"] == f'"{files.sha256(data)}"'
    assert whole.headers["content-type"] == "image/jpeg"
    assert whole.headers["content-length"] == str(len(data))
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-disposition"] == (
        "inline; filename=\"Gauge ?.jpg\"; filename*=UTF-8''Gauge%20%C3%A9.jpg"
    )

    size = len(data)
    for spec, expected in [
        ("bytes=0-99", data[0:100]),
        ("bytes=100-", data[100:]),
        ("bytes=-10", data[-10:]),
        (f"bytes=10-{size + 500}", data[10:]),
    ]:
        part = await client.get(url, headers={**headers, "Range": spec})
        assert part.status_code == 206, spec
        assert part.content == expected, spec
        start = size - len(expected)
        assert part.headers["content-range"] == (
            f"bytes {data.index(expected) if spec != 'bytes=-10' else start}-"
            f"{data.index(expected) + len(expected) - 1 if spec != 'bytes=-10' else size - 1}"
            f"/{size}"
        )
    outside = await client.get(url, headers={**headers, "Range": f"bytes={size}-"})
    assert_error(outside, 416)
    assert outside.headers["content-range"] == f"bytes */{size}"
    # Several ranges, or a stale If-Range: the whole content.
    several = await client.get(url, headers={**headers, "Range": "bytes=0-1,5-6"})
    assert (several.status_code, several.content) == (200, data)
    stale = await client.get(url, headers={**headers, "Range": "bytes=0-1", "If-Range": '"x"'})
    assert (stale.status_code, stale.content) == (200, data)
    current = await client.get(url, headers={**headers, "If-None-Match": whole.headers["etag"]})
    assert current.status_code == 304
    assert current.content == b""


async def test_thumbnail_is_made_once_and_cached(evidence_api: EvidenceApi, site: Site):
    data = files.jpeg_with_exif(seed=11)
    evidence = await uploaded(evidence_api, site, data)
    url = f"/v1/evidence/{evidence['id']}/content?variant=thumb"
    headers = site.tenant.viewer.headers
    first = await evidence_api.client.get(url, headers=headers)
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/jpeg"
    assert first.headers["etag"] == f'"{evidence["sha256"]}-thumb"'
    with Image.open(__import__("io").BytesIO(first.content)) as image:
        assert image.format == "JPEG"
        assert max(image.size) == 320
    cached = (
        evidence_api.root
        / "objects"
        / thumbnail_key(site.tenant.organisation_id, evidence["sha256"])
    )
    assert cached.read_bytes() == first.content
    made_at = cached.stat().st_mtime_ns
    second = await evidence_api.client.get(url, headers=headers)
    assert second.content == first.content
    assert cached.stat().st_mtime_ns == made_at  # served from the cache, not made again

    document = await uploaded(evidence_api, site, files.pdf(), kind="document")
    refused = await evidence_api.client.get(
        f"/v1/evidence/{document['id']}/content?variant=thumb", headers=headers
    )
    assert "no thumbnail" in assert_error(refused, 409)["detail"]


def _damage(path: Path) -> None:
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


async def test_damaged_blob_is_a_fire_error_before_the_first_byte(
    evidence_api: EvidenceApi, site: Site, caplog: pytest.LogCaptureFixture
):
    data = files.png(seed=12)
    evidence = await uploaded(evidence_api, site, data)
    _damage(
        evidence_api.root / "objects" / blob_key(site.tenant.organisation_id, evidence["sha256"])
    )
    url = f"/v1/evidence/{evidence['id']}/content"
    for extra in ({}, {"Range": "bytes=0-9"}):
        body = assert_error(
            await evidence_api.client.get(url, headers={**site.tenant.viewer.headers, **extra}),
            410,
        )
        assert "damaged" in body["detail"]
        assert body["retryable"] is False
    assert any(r.getMessage() == "evidence blob damaged" for r in caplog.records)


async def test_damage_found_mid_stream_cuts_the_body_short(
    evidence_api: EvidenceApi, site: Site, app
):
    data = files.png(seed=13)
    evidence = await uploaded(evidence_api, site, data)
    _damage(
        evidence_api.root / "objects" / blob_key(site.tenant.organisation_id, evidence["sha256"])
    )
    # Larger than the verify-before-send size: checked while streaming.
    app.state.settings = app.state.settings.model_copy(
        update={"evidence_verify_before_send_bytes": 0}
    )
    # Called as ASGI directly: httpx's test transport refuses an unfinished response,
    # which is the point (a real server closes the connection there).
    messages: list[dict[str, Any]] = []
    path = f"/v1/evidence/{evidence['id']}/content"
    token = site.tenant.viewer.headers["Authorization"].encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"test"), (b"authorization", token)],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
    }

    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if requested:
            await asyncio.Event().wait()  # the client never disconnects
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    length = int(dict(start["headers"])[b"content-length"])
    body = b"".join(m.get("body", b"") for m in messages[1:])
    assert length == len(data)
    assert len(body) < length
    assert body == data[: len(body)]
    assert not any(m.get("more_body") is False for m in messages[1:])  # never completed


async def test_lists_newest_first_with_flags(evidence_api: EvidenceApi, site: Site, make_tenant):
    tenant = site.tenant
    made = [
        await uploaded(evidence_api, site, files.png(seed=20 + i), asset_id=site.asset_id)
        for i in range(3)
    ]
    await uploaded(evidence_api, site, files.png(seed=30))  # no asset
    client = evidence_api.client
    flag = await client.post(
        f"/v1/evidence/{made[0]['id']}/flags",
        json={"reason": "Wrong extinguisher photographed"},
        headers=tenant.admin.headers,
    )
    assert flag.status_code == 201, flag.text
    assert flag.json()["reason"] == "Wrong extinguisher photographed"
    assert flag.json()["flagged_by"] == str(tenant.admin.id)
    assert_error(
        await client.post(
            f"/v1/evidence/{made[0]['id']}/flags",
            json={"reason": "x"},
            headers=tenant.technician.headers,
        ),
        403,
    )
    stranger = await make_tenant()
    assert_error(
        await client.post(
            f"/v1/evidence/{made[0]['id']}/flags",
            json={"reason": "x"},
            headers=stranger.admin.headers,
        ),
        404,
    )

    by_asset = await walk(client, f"/v1/assets/{site.asset_id}/evidence", tenant.viewer, limit=2)
    assert [e["id"] for e in by_asset] == [e["id"] for e in reversed(made)]
    assert by_asset[-1]["flags"][0]["id"] == flag.json()["id"]
    by_session = await walk(
        client, f"/v1/tests/sessions/{site.session_id}/evidence", tenant.viewer, limit=3
    )
    assert len(by_session) == 4
    detail = await client.get(f"/v1/evidence/{made[0]['id']}", headers=tenant.viewer.headers)
    assert [f["reason"] for f in detail.json()["flags"]] == ["Wrong extinguisher photographed"]


async def test_no_update_or_delete(evidence_api: EvidenceApi, site: Site):
    evidence = await uploaded(evidence_api, site, files.png(seed=40))
    for method in ("PUT", "PATCH", "DELETE"):
        for path in ("", "/content"):
            response = await evidence_api.client.request(
                method, f"/v1/evidence/{evidence['id']}{path}", headers=site.tenant.admin.headers
            )
            assert_error(response, 405)


async def test_http_round_trip_on_s3(evidence_api: EvidenceApi, site: Site, app, s3_endpoint: str):
    app.state.settings = locked_bucket_settings(s3_endpoint, app.state.settings)
    app.state.evidence_store = None
    data = files.heic(seed=41)
    key = "s3-photo"
    first = await evidence_api.upload(site.tenant.technician, site.session_id, data, key=key)
    again = await evidence_api.upload(site.tenant.technician, site.session_id, data, key=key)
    assert first.status_code == 201, first.text
    assert again.headers["idempotent-replayed"] == "true"
    url = f"/v1/evidence/{first.json()['id']}/content"
    headers = site.tenant.viewer.headers
    assert (await evidence_api.client.get(url, headers=headers)).content == data
    part = await evidence_api.client.get(url, headers={**headers, "Range": "bytes=4-11"})
    assert (part.status_code, part.content) == (206, data[4:12])
    thumb = await evidence_api.client.get(url + "?variant=thumb", headers=headers)
    assert thumb.headers["content-type"] == "image/jpeg"
    # Nothing on the local disk but the (empty) staging directory.
    assert evidence_api.stored_files() == []
