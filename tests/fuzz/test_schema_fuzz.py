"""Schema-driven fuzzing of the whole API (schemathesis) against the ASGI app.

Every operation of ``/openapi.json`` is called with generated requests, valid and
invalid, as an admin (who may call every route). A run fails on any 5xx, a status the
operation does not document, a response that breaks its documented schema, headers or
media type, an error without the FireMode problem envelope, or an invalid request the
server accepted. Bounded: a fixed number of examples per operation, no shrinking.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections import Counter
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
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

from src.app.core.errors import (
    PROBLEM_CONTENT_TYPE,
    ApiError,
    error_responses,
    install_error_handlers,
)
from src.app.core.middleware import RequestContextMiddleware
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


def fuzz_app(
    app: Any, headers_for: Any, *, examples: int = EXAMPLES_PER_OPERATION
) -> tuple[int, Counter[int]]:
    """Fuzzes every operation of ``app``'s schema; raises on the first failed check.
    ``headers_for(operation)`` gives the Authorization header. Returns (operations,
    statuses seen)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", _without_lifespan(app))
    statuses: Counter[int] = Counter()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # The Authorization header is fixed (never mutated): it is ours, not generated.
        fixed = headers_for(operation)
        strategy = st.one_of(
            operation.as_strategy(generation_mode=mode, headers=fixed)
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
        )

        @given(case=strategy)
        @settings(
            max_examples=examples,
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
    return operations, statuses


async def test_fuzz_every_operation(make_tenant: Any, app: FastAPI) -> None:
    # The calls below block this event loop: the app under test runs on schemathesis'
    # own event loop thread, with an engine of its own created there.
    tenant: Tenant = await make_tenant()
    under_test = create_app(Settings())
    under_test.dependency_overrides.update(app.dependency_overrides)
    settings_: Settings = under_test.state.settings
    admin = tenant.admin

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

    started = time.perf_counter()
    operations, statuses = fuzz_app(under_test, headers_for)
    elapsed = time.perf_counter() - started
    print(
        f"\nfuzz: {operations} operations, {sum(statuses.values())} requests in "
        f"{elapsed:.1f} s; statuses {dict(sorted(statuses.items()))}"
    )
    assert operations >= 28
    assert not any(status >= 500 for status in statuses)


def _probe_app(answer: Any) -> FastAPI:
    """A one-route app (no database) whose route answers what ``answer`` makes."""
    probe = FastAPI()
    install_error_handlers(probe)
    probe.add_middleware(RequestContextMiddleware, max_body_bytes=1024 * 1024)

    @probe.get("/probe/{n}", responses=error_responses(404))
    async def get_probe(n: int) -> dict[str, int]:
        return answer(n)  # type: ignore[no-any-return]

    return probe


def _undocumented(n: int) -> dict[str, int]:
    raise ApiError(418, "I am a teapot")


def _bad_envelope(n: int) -> Any:
    return JSONResponse({"oops": n}, status_code=404)


def _wrong_shape(n: int) -> Any:
    return JSONResponse({"n": str(n)})


@pytest.mark.parametrize(
    ("answer", "failure"),
    [
        (_undocumented, "Undocumented status code"),
        (_bad_envelope, "Custom check failed: `problem_envelope`"),
        (_wrong_shape, "Response violates schema"),
    ],
)
def test_the_fuzzer_catches_what_it_is_meant_to(answer: Any, failure: str) -> None:
    """The checks bite: an undocumented status, an error without the envelope and a
    response breaking its schema each fail the run."""
    with pytest.raises(BaseExceptionGroup) as caught:
        fuzz_app(_probe_app(answer), lambda operation: {}, examples=5)
    assert failure in "".join(traceback.format_exception(caught.value))
