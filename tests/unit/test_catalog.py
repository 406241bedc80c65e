"""Catalog rules: add, update only what changes, discontinue once."""

from __future__ import annotations

import pytest

from command_side.domain.catalog import Product
from command_side.domain.errors import Conflict, DomainError, RuleViolation
from shared_contracts.events import ProductAdded, ProductDiscontinued, ProductUpdated


def test_add_records_product_added_at_version_1() -> None:
    product = Product.add("ABC-1", "Mug", 1250)
    assert (product.sku, product.name, product.price, product.status) == (
        "ABC-1",
        "Mug",
        1250,
        "active",
    )
    assert product.is_active
    assert product.version == 1
    assert product.events == [ProductAdded(sku="ABC-1", name="Mug", price=1250)]


def test_loading_records_nothing() -> None:
    product = Product("ABC-1", "Mug", 1250, "discontinued", version=7)
    assert product.events == []
    assert product.version == 7
    assert not product.is_active


def test_add_refuses_non_positive_price() -> None:
    with pytest.raises(RuleViolation) as caught:
        Product.add("ABC-1", "Mug", 0)
    assert caught.value.slug == "invalid-price"
    assert caught.value.loc == ["body", "price"]


def test_update_records_only_changed_fields() -> None:
    product = Product("ABC-1", "Mug", 1250, version=3)
    product.update(name="Mug", price=1300)
    assert product.events == [ProductUpdated(sku="ABC-1", name=None, price=1300)]
    assert (product.name, product.price, product.version) == ("Mug", 1300, 4)

    product.update(name="Big mug")
    assert product.events[-1] == ProductUpdated(sku="ABC-1", name="Big mug", price=None)
    assert product.version == 5

    product.update(name="Huge mug", price=1)
    assert product.events[-1] == ProductUpdated(sku="ABC-1", name="Huge mug", price=1)
    assert (product.name, product.price, product.version) == ("Huge mug", 1, 6)


def test_update_with_no_change_records_nothing() -> None:
    product = Product("ABC-1", "Mug", 1250, version=3)
    product.update(name="Mug", price=1250)
    product.update()
    assert product.events == []
    assert product.version == 3


def test_update_refuses_non_positive_price_and_changes_nothing() -> None:
    product = Product("ABC-1", "Mug", 1250, version=3)
    with pytest.raises(RuleViolation):
        product.update(name="Other", price=-5)
    assert (product.name, product.price, product.version, product.events) == (
        "Mug",
        1250,
        3,
        [],
    )


def test_update_of_discontinued_product_is_a_conflict() -> None:
    product = Product("ABC-1", "Mug", 1250, "discontinued", version=2)
    # Even a PATCH that would change nothing is refused: the product is closed for edits.
    for kwargs in ({"price": 99}, {"name": "Mug"}):
        with pytest.raises(Conflict) as caught:
            product.update(**kwargs)
        assert caught.value.slug == "discontinued"
    assert (product.price, product.version, product.events) == (1250, 2, [])


def test_discontinue_once() -> None:
    product = Product("ABC-1", "Mug", 1250, version=1)
    product.discontinue()
    assert product.status == "discontinued"
    assert product.version == 2
    assert product.events == [ProductDiscontinued(sku="ABC-1")]

    with pytest.raises(Conflict) as caught:
        product.discontinue()
    assert caught.value.slug == "already-discontinued"
    assert product.version == 2
    assert len(product.events) == 1


def test_domain_errors_carry_slug_and_detail() -> None:
    error = Conflict("already-exists", "product ABC-1 already exists")
    assert isinstance(error, DomainError)
    assert (error.slug, error.detail, str(error)) == (
        "already-exists",
        "product ABC-1 already exists",
        "product ABC-1 already exists",
    )
