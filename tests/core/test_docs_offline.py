"""/docs and /redoc work without internet access: every asset comes from this server."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest


class _References(HTMLParser):
    """Every URL a page loads: src and href attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


def _references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize(
    ("page", "expected_assets"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
async def test_docs_pages_load_everything_from_this_server(
    client: httpx.AsyncClient, page: str, expected_assets: set[str]
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    # No external host anywhere in the page: not in an attribute, not in a script.
    assert "http://" not in response.text
    assert "https://" not in response.text
    assert "//fonts." not in response.text
    urls = _references(response.text)
    assert {url.rsplit("/", 1)[-1] for url in urls} == expected_assets
    for url in urls:
        assert url.startswith("/docs-assets/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url


async def test_docs_assets_have_their_content_types(client: httpx.AsyncClient) -> None:
    expected = {
        "swagger-ui-bundle.js": "javascript",
        "redoc.standalone.js": "javascript",
        "swagger-ui.css": "text/css",
        "favicon.png": "image/png",
    }
    for name, content_type in expected.items():
        response = await client.get(f"/docs-assets/{name}")
        assert response.status_code == 200
        assert content_type in response.headers["content-type"], name
