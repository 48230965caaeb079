"""Evidence stored and flagged write one entry each."""

from __future__ import annotations

from fastapi import FastAPI

from tests.audit.conftest import entries_of, one_entry, tx_headers
from tests.evidence import files
from tests.evidence.conftest import EvidenceApi, Site, evidence_api, evidence_dir, site

__all__ = ["evidence_api", "evidence_dir", "site"]  # fixtures used here


async def test_evidence_stored_and_flagged(
    evidence_api: EvidenceApi, site: Site, app: FastAPI
) -> None:
    data = files.png(seed=77)
    headers, tx = tx_headers({})
    stored = await evidence_api.upload(
        site.tenant.technician, site.session_id, data, key="k-77", headers=headers
    )
    assert stored.status_code == 201, stored.text
    entry = await one_entry(app, tx)
    assert (entry.action, entry.subject_id, entry.payload["sha256"]) == (
        "evidence.stored",
        stored.json()["id"],
        files.sha256(data),
    )
    headers, tx = tx_headers({})
    replay = await evidence_api.upload(
        site.tenant.technician, site.session_id, data, key="k-77", headers=headers
    )
    assert replay.status_code == 201
    assert await entries_of(app, tx) == []

    headers, tx = tx_headers(site.tenant.admin.headers)
    flagged = await evidence_api.client.post(
        f"/v1/evidence/{stored.json()['id']}/flags",
        json={"reason": "Wrong extinguisher photographed"},
        headers=headers,
    )
    assert flagged.status_code == 201
    entry = await one_entry(app, tx)
    assert (entry.action, entry.payload["reason"]) == (
        "evidence.flagged",
        "Wrong extinguisher photographed",
    )
