"""Every projection this code knows, by name."""

from __future__ import annotations

from projections import daily_sales, order_history, order_view, product_view
from projections.model import Projection

PROJECTIONS: dict[str, Projection] = {
    p.name: p
    for p in (
        order_view.PROJECTION,
        product_view.PROJECTION,
        daily_sales.PROJECTION,
        order_history.PROJECTION,
    )
}


def get(name: str) -> Projection:
    """The projection called ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return PROJECTIONS[name]
    except KeyError:
        raise KeyError(f"unknown projection {name!r} (known: {', '.join(PROJECTIONS)})") from None
