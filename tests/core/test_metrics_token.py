"""/metrics is open unless FIREMODE_METRICS_TOKEN is set; then it wants that bearer token."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from src.app.core.settings import Settings
from src.app.main import create_app

TOKEN = "metrics-" + "s" * 24


async def _get(settings: Settings, headers: dict[str, str] | None = None) -> httpx.Response:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.get("/metrics", headers=headers or {})


async def test_open_without_a_token_configured() -> None:
    response = await _get(Settings())
    assert response.status_code == 200
    assert "firemode_http_requests_total" in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-of-some-length"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
)
async def test_refused_without_the_right_token(headers: dict[str, str]) -> None:
    response = await _get(Settings(metrics_token=TOKEN), headers)
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == "FIRE-401"
    assert response.headers["www-authenticate"] == 'Bearer realm="firemode-metrics"'
    assert "firemode_http_requests_total" not in response.text
    assert TOKEN not in response.text


async def test_served_with_the_right_token() -> None:
    response = await _get(Settings(metrics_token=TOKEN), {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert "firemode_http_requests_total" in response.text


def test_a_short_token_is_refused_at_start() -> None:
    with pytest.raises(ValidationError):
        Settings(metrics_token="short")
