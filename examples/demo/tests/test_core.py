"""P3-P4: the shop's everyday paths: catalogue, cart rules, orders."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import add

P3 = pytest.mark.priority("P3")
P4 = pytest.mark.priority("P4")


@P3
def test_inventory_upstream_reachable(client: httpx.Client) -> None:
    resp = client.get("/api/connectivity/inventory")
    assert resp.status_code == 200, (
        f"GET /api/connectivity/inventory -> HTTP {resp.status_code} {resp.reason_phrase}"
    )


@P3
def test_products_filter_by_category(client: httpx.Client) -> None:
    items = client.get("/api/products", params={"category": "coffee"}).json()["items"]
    assert {p["category"] for p in items} == {"coffee"}
    assert len(items) == 3


@P3
def test_product_not_found(client: httpx.Client) -> None:
    resp = client.get("/api/products/999")
    assert resp.status_code == 404
    assert "999" in resp.json()["error"]


@P3
def test_cart_quantity_accumulates(client: httpx.Client, cart: dict[str, Any]) -> None:
    add(client, cart["id"], product_id=2, quantity=1).raise_for_status()
    body = add(client, cart["id"], product_id=2, quantity=3).json()
    assert body["items"] == [{"product_id": 2, "quantity": 4}]


@pytest.mark.parametrize("quantity", [0, -1])
@P3
def test_cart_rejects_non_positive_quantity(
    client: httpx.Client, cart: dict[str, Any], quantity: int
) -> None:
    assert add(client, cart["id"], product_id=2, quantity=quantity).status_code == 400


@P3
def test_cart_rejects_unknown_product(client: httpx.Client, cart: dict[str, Any]) -> None:
    assert add(client, cart["id"], product_id=999).status_code == 404


@P3
def test_remove_item_from_cart(client: httpx.Client, cart: dict[str, Any]) -> None:
    add(client, cart["id"], product_id=2).raise_for_status()
    add(client, cart["id"], product_id=3).raise_for_status()
    body = client.delete(f"/api/cart/{cart['id']}/items/2").json()
    assert body["items"] == [{"product_id": 3, "quantity": 1}]


@P3
def test_cart_total(client: httpx.Client, cart: dict[str, Any]) -> None:
    add(client, cart["id"], product_id=1, quantity=2).raise_for_status()
    add(client, cart["id"], product_id=2, quantity=1).raise_for_status()
    assert client.get(f"/api/cart/{cart['id']}").json()["total"] == 28.2


@P4
def test_get_order_by_id(client: httpx.Client, auth: dict[str, str], cart: dict[str, Any]) -> None:
    add(client, cart["id"], product_id=4).raise_for_status()
    order = client.post("/api/orders", json={"cart_id": cart["id"]}, headers=auth).json()
    fetched = client.get(f"/api/orders/{order['id']}", headers=auth).json()
    assert fetched == order


@P4
def test_list_orders_includes_new_order(
    client: httpx.Client, auth: dict[str, str], cart: dict[str, Any]
) -> None:
    add(client, cart["id"], product_id=5).raise_for_status()
    order = client.post("/api/orders", json={"cart_id": cart["id"]}, headers=auth).json()
    ids = [o["id"] for o in client.get("/api/orders", headers=auth).json()["items"]]
    assert order["id"] in ids


@P4
def test_order_from_empty_cart_rejected(
    client: httpx.Client, auth: dict[str, str], cart: dict[str, Any]
) -> None:
    resp = client.post("/api/orders", json={"cart_id": cart["id"]}, headers=auth)
    assert resp.status_code == 400
    assert resp.json()["error"] == "cart is empty"


@P4
def test_unknown_cart(client: httpx.Client) -> None:
    assert client.get("/api/cart/cart-nope").status_code == 404


@P4
def test_wrong_token_is_forbidden(client: httpx.Client) -> None:
    resp = client.get("/api/users/me", headers={"Authorization": "Bearer not-the-token"})
    assert resp.status_code == 403


@P4
def test_search_products(client: httpx.Client) -> None:
    names = [p["name"] for p in client.get("/api/search", params={"q": "beans"}).json()["items"]]
    assert names == ["Espresso beans", "Decaf beans"]
