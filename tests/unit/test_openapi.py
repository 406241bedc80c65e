"""OpenAPI 3.1 generation from declared operations and msgspec types (no I/O)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from orderdesk.openapi import Operation, Parameter, build_openapi, openapi_route

Sku = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9][A-Z0-9-]{0,31}$")]
Limit = Annotated[int, msgspec.Meta(ge=1, le=100)]


class NewProduct(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    price: Annotated[int, msgspec.Meta(ge=1)]


class ProductOut(msgspec.Struct):
    sku: str
    name: str
    price: int


class ProductPage(msgspec.Struct):
    items: list[ProductOut]
    next_cursor: str | None


class Accepted(msgspec.Struct):
    id: str
    version: int
    token: str


OPERATIONS = [
    Operation(
        "POST",
        "/products",
        "Add a product",
        request_body=NewProduct,
        responses={201: Accepted},
        problems=(400, 401, 403, 409, 422, 429),
        response_headers={"ETag": "The product's version."},
    ),
    Operation(
        "GET",
        "/products",
        "List products",
        auth="optional",
        parameters=[Parameter("limit", "query", Limit), Parameter("q", "query")],
        responses={200: ProductPage},
        problems=(422,),
    ),
    Operation(
        "GET",
        "/products/{sku}",
        "One product",
        auth="optional",
        parameters=[Parameter("sku", "path", Sku), Parameter("X-Consistency-Token", "header")],
        responses={200: ProductOut, 304: None},
        problems=(404, 503),
    ),
    Operation(
        "POST",
        "/orders/{id:uuid}/shipment",
        "Ship an order",
        responses={200: Accepted},
        problems=(404, 409),
    ),
]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_openapi(OPERATIONS, title="test api", version="1.2.3")


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_document_has_the_3_1_structure(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": "test api", "version": "1.2.3", "description": ""}
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == len(OPERATIONS)
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        for method, op in item.items():
            assert method in {"get", "post", "put", "patch", "delete"}
            assert op["responses"], f"{method} {path} has no responses"
            for status, response in op["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status)
                assert response["description"]
    for name in doc["components"]["schemas"]:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name  # OpenAPI's component-name rule


def test_every_listed_path_and_its_parameters_are_present(doc: dict[str, Any]) -> None:
    assert set(doc["paths"]) == {"/products", "/products/{sku}", "/orders/{id}/shipment"}
    assert set(doc["paths"]["/products"]) == {"get", "post"}
    listing = doc["paths"]["/products"]["get"]["parameters"]
    assert listing[0] == {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
    }
    one = {p["name"]: p for p in doc["paths"]["/products/{sku}"]["get"]["parameters"]}
    assert one["sku"]["in"] == "path" and one["sku"]["required"] is True
    assert one["sku"]["schema"]["pattern"] == r"^[A-Z0-9][A-Z0-9-]{0,31}$"
    assert one["X-Consistency-Token"]["in"] == "header"
    # A path parameter left undeclared is still listed (as a required string).
    (ship_id,) = doc["paths"]["/orders/{id}/shipment"]["post"]["parameters"]
    assert ship_id == {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def test_bodies_and_responses_come_from_the_msgspec_types(doc: dict[str, Any]) -> None:
    create = doc["paths"]["/products"]["post"]
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = _resolve(doc, body_ref)
    assert body["required"] == ["sku", "name", "price"]
    assert body["properties"]["price"] == {"type": "integer", "minimum": 1}
    assert body["additionalProperties"] is False  # forbid_unknown_fields is in the schema too
    assert create["responses"]["201"]["headers"]["ETag"]["schema"] == {"type": "string"}
    page = _resolve(
        doc,
        doc["paths"]["/products"]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ]["$ref"],
    )
    assert _resolve(doc, page["properties"]["items"]["items"]["$ref"])["title"] == "ProductOut"
    assert "content" not in doc["paths"]["/products/{sku}"]["get"]["responses"]["304"]


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    refs = _refs(doc)
    assert refs
    for ref in refs:
        assert isinstance(_resolve(doc, ref), dict), ref


def test_problem_statuses_answer_problem_json(doc: dict[str, Any]) -> None:
    create = doc["paths"]["/products"]["post"]["responses"]
    assert {"400", "401", "403", "409", "422", "429"} <= set(create)
    schema = create["409"]["content"]["application/problem+json"]["schema"]
    problem = _resolve(doc, schema["$ref"])
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert "Retry-After" in create["429"]["headers"]
    assert "Retry-After" in doc["paths"]["/products/{sku}"]["get"]["responses"]["503"]["headers"]
    assert "Retry-After" not in create["409"].get("headers", {})


def test_security_follows_the_declared_auth(doc: dict[str, Any]) -> None:
    assert doc["paths"]["/products"]["post"]["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/products"]["get"]["security"] == [{}, {"bearerAuth": []}]


def test_mistakes_in_the_declaration_are_refused() -> None:
    with pytest.raises(ValueError, match="not in the path"):
        build_openapi(
            [
                Operation(
                    "GET", "/a", "x", responses={200: None}, parameters=[Parameter("id", "path")]
                )
            ],
            title="t",
            version="1",
        )
    twice = Operation("GET", "/a", "x", responses={200: None})
    with pytest.raises(ValueError, match="duplicate operationId"):
        build_openapi([twice, twice], title="t", version="1")


def test_route_serves_the_document(doc: dict[str, Any]) -> None:
    with TestClient(Starlette(routes=[openapi_route(doc)])) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == doc
