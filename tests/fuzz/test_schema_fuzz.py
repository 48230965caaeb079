"""Schema-driven fuzzing of the whole API (schemathesis) against the ASGI app.

Every operation of ``/openapi.json`` is called with generated requests, valid and
invalid, as an admin (who may call every route). A run fails on any 5xx, a status the
operation does not document, a response that breaks its documented schema, headers or
media type, an error without the FireMode problem envelope, or an invalid request the
server accepted. Bounded: a fixed number of examples per operation, no shrinking.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from src.app.core.errors import PROBLEM_CONTENT_TYPE
from src.app.core.settings import Settings
from src.app.identity.tokens import issue_access_token
from src.app.main import create_app
from tests.conftest import Tenant

EXAMPLES_PER_OPERATION = 25
ENVELOPE = {"type", "title", "status", "detail", "instance", "transaction_id"} | {
    "error_code",
    "message",
    "retryable",
}


@schemathesis.check
def problem_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error is the FireMode problem document, with the transaction id header."""
    if response.status_code < 400:
        return None
    assert response.headers.get("content-type", [""])[0].startswith(PROBLEM_CONTENT_TYPE)
    body = response.json()
    missing = ENVELOPE - set(body)
    assert not missing, f"problem document without {sorted(missing)}"
    assert body["status"] == response.status_code
    assert body["error_code"] == f"FIRE-{response.status_code}"
    assert body["transaction_id"] == response.headers["x-transaction-id"][0]
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    problem_envelope,
]


def _without_lifespan(app: FastAPI) -> Any:
    """The app without its lifespan: it would reconfigure the test run's logging."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await app(scope, receive, send)

    return asgi


async def test_fuzz_every_operation(make_tenant: Any, app: FastAPI) -> None:
    # The calls below block this event loop: the app under test runs on schemathesis'
    # own event loop thread, with an engine of its own created there.
    tenant: Tenant = await make_tenant()
    # An app of its own: its engine is created lazily on schemathesis' event loop thread.
    fuzz_app = create_app(Settings())
    fuzz_app.dependency_overrides.update(app.dependency_overrides)
    schema = schemathesis.openapi.from_asgi("/openapi.json", _without_lifespan(fuzz_app))
    settings_: Settings = fuzz_app.state.settings
    admin = tenant.admin
    statuses: Counter[int] = Counter()
    operations = 0
    started = time.perf_counter()

    def headers_for(operation: Any) -> dict[str, str]:
        token = admin.token
        if operation.path.endswith("/auth/logout"):
            # Logging out revokes the token it carries: each call gets a fresh one.
            token = issue_access_token(
                settings_,
                user_id=admin.id,
                organisation_id=admin.organisation_id,
                role=admin.role.value,
            ).token
        return {"Authorization": f"Bearer {token}"}

    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # The Authorization header is fixed (never mutated): it is ours, not generated.
        fixed = {"Authorization": f"Bearer {admin.token}"}
        strategy = st.one_of(
            operation.as_strategy(generation_mode=mode, headers=fixed)
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
        )

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            headers = {**headers_for(case.operation), "X-Transaction-ID": str(uuid.uuid4())}
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            statuses[response.status_code] += 1

        fuzz()
    elapsed = time.perf_counter() - started
    total = sum(statuses.values())
    print(
        f"\nfuzz: {operations} operations, {total} requests in {elapsed:.1f} s; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    assert operations >= 28
    assert not any(status >= 500 for status in statuses)
