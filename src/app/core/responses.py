"""Response helpers shared by every route."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response

JSON_MEDIA_TYPE = "application/json"


def json_response(
    model: BaseModel,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    exclude_unset: bool = False,
) -> Response:
    """Serialise a response model to the exact bytes that will be sent (and stored)."""
    return Response(
        content=model.model_dump_json(exclude_unset=exclude_unset),
        status_code=status_code,
        headers=headers,
        media_type=JSON_MEDIA_TYPE,
    )
