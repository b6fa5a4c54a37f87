"""The HTTP JSON API (django-ninja): /api/... with its OpenAPI schema at /api/openapi.json.

This is the one place that builds the NinjaAPI: it maps service errors to HTTP answers and mounts
every app's router. Routers import their helpers from webapp.fleet.api_auth, never from here,
so nothing imports this module but webapp/urls.py.

django-ninja rather than DRF: its request/response schemas are pydantic models, the same
library that validates the realtime protocol, so one style of schema covers both, and the
OpenAPI document comes from the type hints with no extra package.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import NinjaAPI

from webapp.dashboard.api import router as dashboard_router
from webapp.fleet.admin_api import router as fleet_admin_router
from webapp.fleet.api import router as fleet_router
from webapp.fleet.api_auth import user_auth
from webapp.fleet.robot_api import router as robot_router
from webapp.fleet.services.errors import ServiceError
from webapp.labeling.api import router as labeling_router
from webapp.learning.api import router as learning_router


class ForemanAPI(NinjaAPI):
    """The API, whose OpenAPI schema also documents the errors every operation can answer with."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None) -> Any:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        document_errors(schema)
        return schema


ERROR_SCHEMA = {
    "title": "Error", "type": "object", "required": ["detail"], "additionalProperties": True,
    "description": "Every error: `detail` says what went wrong (a list of field errors for invalid input); "
                   "`code` names the service error (held_by_other, estopped, …) with its own extra fields.",
    "properties": {"detail": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
                   "code": {"type": "string"}},
}
ERROR_RESPONSES = {
    "400": "the request body cannot be parsed (not JSON, or not the declared form)",
    "401": "missing or invalid credentials (a personal or session login; robot endpoints: a robot token)",
    "403": "the role may not do this",
    "404": "no such object (named in the path or the body)",
    "409": "refused in the robot's current state (held by someone else, e-stopped, not held, …)",
    "422": "invalid input: the body, query or path does not fit the operation",
}


def document_errors(schema: dict[str, Any]) -> None:
    """Add the shared Error schema and the error statuses each operation can return (what schemathesis
    checks the API against): 401/403 where credentials are needed, 400 where a body is parsed, 404
    where the path or body names an object, 409 on state-changing calls, 422 everywhere (validation)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes = ["422"]
            if operation.get("security"):
                codes += ["401", "403"]
            if "requestBody" in operation:
                codes.append("400")
            if "{" in path or "requestBody" in operation:
                codes.append("404")
            if method in ("post", "put", "patch", "delete"):
                codes.append("409")
            for code in codes:
                if code not in responses and int(code) not in responses:
                    responses[code] = {"description": ERROR_RESPONSES[code], **reference}


api = ForemanAPI(title="Foreman API", version="1", auth=user_auth, urls_namespace="api")


@api.exception_handler(ServiceError)
def service_error(request: HttpRequest, error: ServiceError) -> Any:
    """A refused service call: its HTTP status, with `code`, `detail` and the error's own fields."""
    return api.create_response(request, {"code": error.code, "detail": error.message, **error.data}, status=error.http_status)


api.add_router("", fleet_router)
api.add_router("/robot", robot_router)
api.add_router("/fleet", fleet_admin_router)
api.add_router("/dashboard", dashboard_router)
api.add_router("/labeling", labeling_router)
api.add_router("/learning", learning_router)
