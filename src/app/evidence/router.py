"""Evidence routes: upload (multipart, streamed), metadata, content, flags, and the lists
of a session's and an asset's evidence. Evidence is never updated or deleted here."""

from __future__ import annotations

import asyncio
import uuid
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import Asset
from src.app.core.database import get_db
from src.app.core.errors import ApiError, error_responses
from src.app.core.idempotency import (
    IDEMPOTENCY_ERROR_STATUSES,
    IdempotentRequest,
    idempotency_optional,
    idempotency_required,
)
from src.app.core.pagination import Page, PageParams, page_params, paginate
from src.app.core.responses import json_response
from src.app.core.tenancy import Principal, get_owned
from src.app.evidence import content, images, service
from src.app.evidence.docs import (
    CONTENT_DESCRIPTION,
    CONTENT_RESPONSES,
    UPLOAD_DESCRIPTION,
    UPLOAD_REQUEST_BODY,
)
from src.app.evidence.models import Evidence
from src.app.evidence.rules import clean_filename, kind_refusal, record_fingerprint
from src.app.evidence.schemas import EvidenceOut, FlagCreate, FlagOut, UploadForm
from src.app.evidence.signatures import sniff
from src.app.evidence.upload import ReceivedUpload, receive_upload
from src.app.identity.dependencies import require_admin, require_reader, require_writer
from src.app.sessions.models import TestSession

UPLOAD_PATH = "/v1/evidence"
"""The one path whose body is streamed (exempt from the JSON body limit)."""
SESSION_LIST_ENDPOINT = "evidence.by_session"
ASSET_LIST_ENDPOINT = "evidence.by_asset"

router = APIRouter(tags=["evidence"])


class Variant(StrEnum):
    original = "original"
    thumb = "thumb"


def _form(received: ReceivedUpload) -> UploadForm:
    unknown = sorted(set(received.fields) - set(UploadForm.model_fields))
    if unknown:
        raise ApiError(422, f"Unknown form fields: {', '.join(unknown)}")
    try:
        return UploadForm.from_fields(received.fields)
    except ValidationError as exc:
        # The standard 422 document, with a pointer per form field.
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None


@router.post(
    "/evidence",
    status_code=201,
    response_model=EvidenceOut,
    summary="Upload evidence (admin, technician): multipart, Idempotency-Key required",
    description=UPLOAD_DESCRIPTION,
    openapi_extra={"requestBody": UPLOAD_REQUEST_BODY},
    responses={
        200: {"model": EvidenceOut, "description": "An identical upload existed: its record"},
        **error_responses(*IDEMPOTENCY_ERROR_STATUSES, 404, 413, 415),
    },
)
async def upload_evidence(
    request: Request,
    principal: Principal = Depends(require_writer),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_required),
) -> Response:
    settings = request.app.state.settings
    # A slow upload must not hold a pooled connection: end the auth read transaction.
    await db.rollback()
    received = await receive_upload(
        request,
        staging_dir=service.staging_dir(settings),
        max_file_bytes=settings.max_evidence_bytes,
    )
    try:
        form = _form(received)
        if form.sha256 != received.sha256:
            raise ApiError(
                422,
                f"The file's SHA-256 is {received.sha256}, not the declared {form.sha256}: "
                "the upload was damaged or incomplete; nothing was kept",
            )
        media = sniff(received.head)
        if media is None:
            raise ApiError(
                415,
                "The file is not an allowed type (JPEG, PNG, HEIC/HEIF, WebP, PDF, MP4, "
                "QuickTime); the type is decided from its bytes, not its name",
            )
        refusal = kind_refusal(form.kind, media)
        if refusal is not None:
            raise ApiError(422, refusal)
        embedded = (
            await asyncio.to_thread(images.read_embedded, received.staged) if media.is_image else {}
        )
        filename = clean_filename(received.filename, media.extension)
        fingerprint = record_fingerprint(service.declared_fields(form, received))
        store = service.get_store(request)

        async def work() -> Response:
            evidence, created = await service.record_upload(
                db=db,
                store=store,
                principal=principal,
                form=form,
                received=received,
                media=media,
                filename=filename,
                embedded=embedded,
                fingerprint=fingerprint,
            )
            flags = (
                (await service.flags_of(db=db, evidence_ids=[evidence.id]))[evidence.id]
                if not created
                else []
            )
            return json_response(
                EvidenceOut.of(evidence, flags),
                status_code=201 if created else 200,
                headers={"Location": f"/v1/evidence/{evidence.id}"},
            )

        return await idempotency.run(principal, work, fingerprint=fingerprint)
    finally:
        received.discard()


@router.get(
    "/evidence/{evidence_id}",
    response_model=EvidenceOut,
    summary="Get an evidence record (its metadata; the bytes are at content_url)",
)
async def get_evidence(
    evidence_id: uuid.UUID,
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> EvidenceOut:
    evidence = await get_owned(db, Evidence, evidence_id, principal, what="Evidence")
    flags = await service.flags_of(db=db, evidence_ids=[evidence.id])
    return EvidenceOut.of(evidence, flags[evidence.id])


@router.get(
    "/evidence/{evidence_id}/content",
    summary="Download the stored bytes (or a JPEG thumbnail of an image)",
    description=CONTENT_DESCRIPTION,
    response_class=Response,
    responses={**CONTENT_RESPONSES, **error_responses(409, 410, 416)},
)
async def get_evidence_content(
    request: Request,
    evidence_id: uuid.UUID,
    variant: Variant = Query(
        Variant.original,
        description="`original`: the bytes as uploaded; `thumb`: a JPEG thumbnail "
        "(images only, otherwise 409).",
    ),
    range_header: str | None = Header(
        None, alias="Range", description="One byte range, e.g. `bytes=0-1023` (206)."
    ),
    if_range: str | None = Header(
        None, alias="If-Range", description="Serve the range only if the ETag still matches."
    ),
    if_none_match: str | None = Header(
        None, alias="If-None-Match", description="The ETag the client has (304 when current)."
    ),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Response:
    evidence = await get_owned(db, Evidence, evidence_id, principal, what="Evidence")
    db.expunge(evidence)  # keeps its loaded values through the rollback
    await db.rollback()  # no connection held while bytes stream
    settings = request.app.state.settings
    store = service.get_store(request)
    if variant is Variant.thumb:
        representation = await content.thumbnail(store, evidence, settings)
    else:
        representation = await content.original(store, evidence)
    return await content.respond(
        store,
        evidence,
        representation,
        range_header=range_header,
        if_range=if_range,
        if_none_match=if_none_match,
        settings=settings,
    )


@router.post(
    "/evidence/{evidence_id}/flags",
    status_code=201,
    response_model=FlagOut,
    summary="Flag an evidence item (admin); the item stays, and the flag is a record",
    responses=error_responses(*IDEMPOTENCY_ERROR_STATUSES, 404),
)
async def flag_evidence(
    evidence_id: uuid.UUID,
    body: FlagCreate,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    async def work() -> Response:
        flag = await service.add_flag(
            db=db, principal=principal, evidence_id=evidence_id, reason=body.reason
        )
        return json_response(FlagOut.of(flag), status_code=201)

    return await idempotency.run(principal, work)


async def _page(
    db: AsyncSession,
    principal: Principal,
    params: PageParams,
    statement: Select[Any],
    *,
    endpoint: str,
    filters: dict[str, str],
) -> Page[EvidenceOut]:
    rows, next_cursor = await paginate(
        db,
        statement,
        Evidence,
        params,
        endpoint=endpoint,
        filters=filters,
        organisation_id=principal.organisation_id,
    )
    flags = await service.flags_of(db=db, evidence_ids=[row.id for row in rows])
    return Page[EvidenceOut](
        data=[EvidenceOut.of(row, flags[row.id]) for row in rows], next_cursor=next_cursor
    )


@router.get(
    "/tests/sessions/{session_id}/evidence",
    response_model=Page[EvidenceOut],
    summary="List a test session's evidence, newest first",
    responses=error_responses(400),
)
async def list_session_evidence(
    session_id: uuid.UUID,
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Page[EvidenceOut]:
    await get_owned(db, TestSession, session_id, principal, what="Test session")
    return await _page(
        db,
        principal,
        params,
        service.list_for_session(principal, session_id),
        endpoint=SESSION_LIST_ENDPOINT,
        filters={"session_id": str(session_id)},
    )


@router.get(
    "/assets/{asset_id}/evidence",
    response_model=Page[EvidenceOut],
    summary="List an asset's evidence, newest first",
    responses=error_responses(400),
)
async def list_asset_evidence(
    asset_id: uuid.UUID,
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Page[EvidenceOut]:
    await get_owned(db, Asset, asset_id, principal, what="Asset")
    return await _page(
        db,
        principal,
        params,
        service.list_for_asset(principal, asset_id),
        endpoint=ASSET_LIST_ENDPOINT,
        filters={"asset_id": str(asset_id)},
    )
