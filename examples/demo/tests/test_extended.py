"""P5-P6: edges of the API contract. Module default P5; a few are P6."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from conftest import add

pytestmark = pytest.mark.priority("P5")
P6 = pytest.mark.priority("P6")


def test_unknown_route_is_json_404(client: httpx.Client) -> None:
    resp = client.get("/api/nothing-here")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/json"


def test_method_not_allowed(client: httpx.Client) -> None:
    assert client.put("/api/products").status_code == 405


def test_invalid_json_body(client: httpx.Client, cart: dict[str, Any]) -> None:
    resp = client.post(
        f"/api/cart/{cart['id']}/items",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400


def test_products_sorted_by_price(client: httpx.Client) -> None:
    prices = [p["price"] for p in client.get("/api/products?sort=price").json()["items"]]
    assert prices == sorted(prices)


def test_product_prices_positive(client: httpx.Client) -> None:
    assert all(p["price"] > 0 for p in client.get("/api/products").json()["items"])


def test_health_is_fast(client: httpx.Client) -> None:
    started = time.perf_counter()
    client.get("/health").raise_for_status()
    assert time.perf_counter() - started < 0.5


def test_carts_are_isolated(client: httpx.Client) -> None:
    first = client.post("/api/cart").json()["id"]
    second = client.post("/api/cart").json()["id"]
    add(client, first, product_id=1).raise_for_status()
    assert client.get(f"/api/cart/{second}").json()["items"] == []


def test_head_health(client: httpx.Client) -> None:
    resp = client.head("/health")
    assert resp.status_code == 200
    assert resp.content == b""


@P6
def test_search_is_case_insensitive(client: httpx.Client) -> None:
    items = client.get("/api/search", params={"q": "ESPRESSO"}).json()["items"]
    assert [p["id"] for p in items] == [1]


@P6
def test_search_requires_query(client: httpx.Client) -> None:
    assert client.get("/api/search").status_code == 400


@P6
def test_products_pagination(client: httpx.Client) -> None:
    body = client.get("/api/products", params={"limit": 2, "offset": 1}).json()
    assert [p["id"] for p in body["items"]] == [2, 3]
    assert body["total"] == 6


@P6
def test_request_id_is_echoed(client: httpx.Client) -> None:
    resp = client.get("/health", headers={"X-Request-ID": "greenloop-42"})
    assert resp.headers["x-request-id"] == "greenloop-42"


@P6
def test_order_ids_are_unique(client: httpx.Client, auth: dict[str, str]) -> None:
    ids = set()
    for _ in range(3):
        cart_id = client.post("/api/cart").json()["id"]
        add(client, cart_id, product_id=2).raise_for_status()
        ids.add(client.post("/api/orders", json={"cart_id": cart_id}, headers=auth).json()["id"])
    assert len(ids) == 3
