"""The catalog reads: one product with ETag/304 and the cache, pages, filters and sorts."""

from __future__ import annotations

from typing import Any

import pytest

from orderdesk.settings import Settings
from tests.integration.query_rows import add_product, connect, query_client


def test_product_has_every_field_an_etag_and_answers_304(client: Any, conn: Any) -> None:
    add_product(
        conn,
        "MUG-1",
        name="Blue Mug",
        price=1250,
        on_hand=10,
        reserved=3,
        units_sold=4,
        revenue=5000,
        version=7,
    )
    response = client.get("/products/MUG-1")
    assert response.status_code == 200
    assert response.headers["etag"] == '"7"'
    assert response.json() == {
        "sku": "MUG-1",
        "name": "Blue Mug",
        "price": 1250,
        "status": "active",
        "on_hand": 10,
        "reserved": 3,
        "available": 7,
        "units_sold": 4,
        "revenue": 5000,
        "version": 7,
        "updated_at": "2026-03-01T12:00:00.000000Z",
    }
    assert client.get("/products/MUG-1", headers={"If-None-Match": '"7"'}).status_code == 304
    assert client.get("/products/MUG-1", headers={"If-None-Match": '"6"'}).status_code == 200
    assert client.get("/products/MUG-1", headers={"If-None-Match": 'W/"1", "7"'}).status_code == 304


def test_second_read_is_a_cache_hit_served_without_postgres(client: Any, conn: Any) -> None:
    add_product(conn, "MUG-1", version=1)
    stats = client.app.state.resources.stats
    assert client.get("/products/MUG-1").json()["version"] == 1
    assert stats.misses.get("product") == 1
    # Changing the row behind the cache's back proves the second answer came from Redis.
    conn.execute("UPDATE read.product_view SET name = 'Changed' WHERE sku = 'MUG-1'")
    second = client.get("/products/MUG-1")
    assert second.json()["name"] == "Product MUG-1"
    assert stats.hits.get("product") == 1


def test_a_cache_hit_carries_the_same_headers_as_a_read_from_postgres(
    client: Any, conn: Any
) -> None:
    add_product(conn, "MUG-1", version=3)
    miss, hit = client.get("/products/MUG-1"), client.get("/products/MUG-1")
    assert client.app.state.resources.stats.hits.get("product") == 1

    def described(response: Any) -> dict[str, str]:
        return {k: v for k, v in response.headers.items() if k != "x-request-id"}

    assert described(hit) == described(miss)
    assert described(hit) == {
        "content-length": str(len(hit.content)),
        "content-type": "application/json",
        "etag": '"3"',
        "cache-control": "no-cache",
    }
    assert hit.content == miss.content


def test_unknown_or_impossible_sku_is_404_problem(client: Any) -> None:
    for sku in ("NOPE-1", "lower-case", "X" * 40):
        response = client.get(f"/products/{sku}")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:orderdesk:problem:not-found"


def test_filters_by_q_status_and_in_stock(client: Any, conn: Any) -> None:
    add_product(conn, "MUG-1", name="Blue Mug", on_hand=5)
    add_product(conn, "MUG-2", name="Red mug", on_hand=0, status="discontinued")
    add_product(conn, "TEA-1", name="Green Tea", on_hand=3, reserved=3)
    add_product(conn, "PCT-1", name="100% cotton", on_hand=1)

    def skus(query: str) -> list[str]:
        response = client.get("/products" + query)
        assert response.status_code == 200, response.text
        return [item["sku"] for item in response.json()["items"]]

    assert skus("") == ["MUG-1", "MUG-2", "PCT-1", "TEA-1"]
    assert skus("?q=MUG") == ["MUG-1", "MUG-2"]
    assert skus("?q=tea-") == ["TEA-1"]  # sku, case-insensitive
    assert skus("?q=%25") == ["PCT-1"]  # a literal %, not a wildcard
    assert skus("?status=discontinued") == ["MUG-2"]
    assert skus("?in_stock=true") == ["MUG-1", "PCT-1"]
    assert skus("?in_stock=false") == ["MUG-2", "TEA-1"]
    assert skus("?q=mug&status=active&in_stock=true") == ["MUG-1"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("sku", ["A-1", "B-1", "C-1", "D-1"]),
        ("name", ["C-1", "A-1", "D-1", "B-1"]),
        ("-units_sold", ["B-1", "C-1", "D-1", "A-1"]),
        ("-revenue", ["D-1", "A-1", "B-1", "C-1"]),
    ],
)
def test_every_sort_pages_through_all_rows_in_order(
    client: Any, conn: Any, sort: str, expected: list[str]
) -> None:
    add_product(conn, "A-1", name="banana", units_sold=1, revenue=500)
    add_product(conn, "B-1", name="Zucchini", units_sold=9, revenue=90)
    add_product(conn, "C-1", name="apple", units_sold=5, revenue=50)
    add_product(conn, "D-1", name="Cherry", units_sold=5, revenue=900)
    seen: list[str] = []
    cursor = None
    while True:
        query = f"/products?sort={sort}&limit=1" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(query).json()
        seen += [item["sku"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


def test_pages_never_repeat_or_drop_rows_while_inserts_happen(client: Any, conn: Any) -> None:
    original = [f"P-{i:03d}" for i in range(0, 60, 2)]  # even numbers
    for sku in original:
        add_product(conn, sku)
    seen: list[str] = []
    cursor = None
    inserted = 1
    while True:
        body = client.get("/products?limit=7" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [item["sku"] for item in body["items"]]
        # Between page reads, new rows land before, inside and after the next page.
        for sku in (f"P-{inserted:03d}", f"P-{inserted + 20:03d}", "A-000"):
            if sku not in seen:
                add_product(conn, sku)
        inserted += 4
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert set(original) <= set(seen)
    assert seen == sorted(seen)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=-1",
        "sort=price",
        "sort=-sku",
        "status=gone",
        "in_stock=maybe",
        "q=" + "x" * 201,
        "q=a%00b",  # PostgreSQL text cannot hold NUL: a 422, not a 500
    ],
)
def test_bad_query_values_are_422_naming_the_parameter(client: Any, query: str) -> None:
    response = client.get(f"/products?{query}")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:orderdesk:problem:validation"
    assert body["errors"][0]["loc"] == ["query", query.split("=")[0]]


def _with_key(cursor: str, key: str) -> str:
    """``cursor`` with its sort key replaced: what a client forging one would send."""
    import base64
    import json

    decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    forged = json.dumps([decoded[0], key]).encode()
    return base64.urlsafe_b64encode(forged).decode().rstrip("=")


def test_bad_or_foreign_cursors_are_400(client: Any, conn: Any) -> None:
    for sku in ("A-1", "B-1", "C-1"):
        add_product(conn, sku)
    by_sku = client.get("/products?limit=1").json()["next_cursor"]
    by_name = client.get("/products?limit=1&sort=name").json()["next_cursor"]
    forged = _with_key(by_sku, "A-1\x00")  # a key PostgreSQL would refuse
    for query in (
        "cursor=!!!",
        "cursor=bm90IGpzb24",
        f"sort=name&cursor={by_sku}",
        f"cursor={by_name}",
        f"q=A&cursor={by_sku}",
        "cursor=WzFd",
        f"cursor={forged}",
    ):
        response = client.get(f"/products?{query}")
        assert response.status_code == 400, query
        assert response.json()["type"] == "urn:orderdesk:problem:invalid-cursor"
    assert client.get(f"/products?limit=5&cursor={by_sku}").status_code == 200


def test_reads_the_read_database_when_it_is_a_separate_one(
    settings: Settings, second_db_url: str
) -> None:
    import dataclasses

    separate = dataclasses.replace(settings, read_database_url=second_db_url)
    with connect(second_db_url) as read_conn:
        add_product(read_conn, "ONLY-READ")
    with query_client(separate) as separate_client:
        assert separate_client.get("/products/ONLY-READ").status_code == 200
        assert [p["sku"] for p in separate_client.get("/products").json()["items"]] == ["ONLY-READ"]
