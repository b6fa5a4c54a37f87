"""Schemathesis against /api/openapi.json: every operation of the HTTP API, called with generated
(valid and invalid) path parameters, queries and bodies, as an admin (robot endpoints with a robot
token). No response may be a server error, and every response must match the schema the API
publishes (status code documented, body of the documented shape).

In-process through Django's WSGI handler, on the test database (Postgres under scripts/test.sh).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from webapp.fleet.services.users import api_token_issue


@pytest.fixture(autouse=True)
def handler_keeps_the_test_connection(db: Any) -> Iterator[None]:
    """As Django's test client does: the WSGI handler must not close the test transaction's connection."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def tokens(fleet: Any, users: dict[str, Any]) -> dict[str, str]:
    return {"admin": api_token_issue(user=users["admin"]), "robot": fleet.tokens["r1"]}


# Loaded at collection (pytest-django has set Django up by then; the schema view reads no database).
# (schemathesis.pytest.from_fixture does not work with pytest 9: it reads a private node attribute.)
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_answers_every_generated_request_within_its_schema(case: Any, tokens: dict[str, str]) -> None:
    token = tokens["robot"] if case.path.startswith("/api/robot/") else tokens["admin"]
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                           checks=[not_a_server_error, status_code_conformance, response_schema_conformance])
