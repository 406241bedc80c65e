"""OpenAPI 3.1 documents built from a declarative list of operations and msgspec types.

Each API lists its operations once (method, path, parameters, the msgspec type that decodes
the body, the types that shape its responses, the problem statuses it can answer); the JSON
Schemas come from ``msgspec.json.schema_components``, so the document cannot drift from the
types that actually validate requests. msgspec emits JSON Schema 2020-12, which is OpenAPI
3.1's schema dialect, so its output is used as is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderdesk.problems import PROBLEM_CONTENT_TYPE, TITLES, Problem

REF_TEMPLATE = "#/components/schemas/{name}"
OPENAPI_VERSION = "3.1.0"
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")  # Starlette allows {id:uuid}
_RETRY_AFTER_STATUSES = (429, 503)

Auth = Literal["required", "optional", "none"]


@dataclass(frozen=True, slots=True)
class Parameter:
    """A path, query or header parameter; ``type`` is any type msgspec can describe
    (``Annotated[int, msgspec.Meta(ge=1)]`` carries its constraints into the schema)."""

    name: str
    location: Literal["path", "query", "header"]
    type: Any = str
    required: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation. ``responses`` maps a success status to its body type (``None``: no
    body); ``problems`` lists the error statuses answered with problem+json."""

    method: str
    path: str
    summary: str
    responses: Mapping[int, Any]
    parameters: Sequence[Parameter] = ()
    request_body: Any = None
    problems: Sequence[int] = ()
    auth: Auth = "required"
    operation_id: str | None = None
    tags: Sequence[str] = ()
    response_headers: Mapping[str, str] = field(default_factory=dict)  # name → description

    @property
    def id(self) -> str:
        if self.operation_id:
            return self.operation_id
        words = re.sub(r"[{}]", "", self.path).strip("/").replace("/", "_").replace("-", "_")
        return f"{self.method.lower()}_{words or 'root'}"


def build_openapi(
    operations: Sequence[Operation], *, title: str, version: str, description: str = ""
) -> dict[str, Any]:
    """The OpenAPI 3.1 document (a JSON-ready dict) describing ``operations``."""
    ops = [_with_path_parameters(op) for op in operations]
    # Every type goes through ONE schema_components call so shared Structs become one
    # component; the returned list is in the order of ``types``.
    types: list[Any] = [Problem]
    for op in ops:
        types.extend(p.type for p in op.parameters)
        if op.request_body is not None:
            types.append(op.request_body)
        types.extend(t for t in op.responses.values() if t is not None)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    schema_of = iter(schemas[1:])  # schemas[0] is Problem's $ref

    paths: dict[str, dict[str, Any]] = {}
    seen_ids: set[str] = set()
    for op in ops:
        if op.id in seen_ids:
            raise ValueError(f"duplicate operationId {op.id!r}")
        seen_ids.add(op.id)
        item: dict[str, Any] = {"operationId": op.id, "summary": op.summary}
        if op.tags:
            item["tags"] = list(op.tags)
        if op.parameters:
            item["parameters"] = [_parameter(p, next(schema_of)) for p in op.parameters]
        if op.request_body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": next(schema_of)}},
            }
        responses: dict[str, Any] = {}
        for status, type_ in op.responses.items():
            response: dict[str, Any] = {"description": TITLES.get(status, _success(status))}
            if type_ is not None:
                response["content"] = {"application/json": {"schema": next(schema_of)}}
            if op.response_headers:
                response["headers"] = {
                    name: {"description": text, "schema": {"type": "string"}}
                    for name, text in op.response_headers.items()
                }
            responses[str(status)] = response
        for status in op.problems:
            responses[str(status)] = _problem_response(status)
        item["responses"] = responses
        item["security"] = _security(op.auth)
        paths.setdefault(_openapi_path(op.path), {})[op.method.lower()] = item

    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _success(status: int) -> str:
    return {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 304: "Not Modified"}.get(
        status, "Response"
    )


def _openapi_path(path: str) -> str:
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _with_path_parameters(op: Operation) -> Operation:
    """Declare every ``{name}`` of the path (as a string unless given), always required."""
    declared = {p.name: p for p in op.parameters if p.location == "path"}
    names = _PATH_PARAM.findall(op.path)
    unknown = set(declared) - set(names)
    if unknown:
        raise ValueError(f"{op.method} {op.path}: path parameters not in the path: {unknown}")
    path_params = [
        Parameter(
            n,
            "path",
            declared[n].type if n in declared else str,
            True,
            declared[n].description if n in declared else "",
        )
        for n in names
    ]
    others = [p for p in op.parameters if p.location != "path"]
    return Operation(
        op.method,
        op.path,
        op.summary,
        op.responses,
        [*path_params, *others],
        op.request_body,
        op.problems,
        op.auth,
        op.operation_id,
        op.tags,
        op.response_headers,
    )


def _parameter(p: Parameter, schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": p.name,
        "in": p.location,
        "required": p.required or p.location == "path",
        "schema": schema,
    }
    if p.description:
        out["description"] = p.description
    return out


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": TITLES.get(status, "Error"),
        "content": {
            PROBLEM_CONTENT_TYPE: {"schema": {"$ref": REF_TEMPLATE.format(name="Problem")}}
        },
    }
    if status in _RETRY_AFTER_STATUSES:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return response


def _security(auth: Auth) -> list[dict[str, list[str]]]:
    if auth == "required":
        return [{"bearerAuth": []}]
    if auth == "optional":
        return [{}, {"bearerAuth": []}]  # the empty requirement means "anonymous is fine"
    return []


def openapi_route(document: Mapping[str, Any], path: str = "/openapi.json") -> Route:
    """A route serving ``document`` (encoded once, when the app is built)."""
    body = msgspec.json.encode(document)

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Route(path, openapi, methods=["GET"], name="openapi")
