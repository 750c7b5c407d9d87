"""P1-P2: what must work for anyone to shop at all."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import add

P1 = pytest.mark.priority("P1")
P2 = pytest.mark.priority("P2")


@P1
def test_health_ok(client: httpx.Client) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


@P1
def test_version(client: httpx.Client) -> None:
    assert client.get("/api/version").json() == {"name": "demo-shop", "version": "1.4.2"}


@P1
def test_products_list_not_empty(client: httpx.Client) -> None:
    body = client.get("/api/products").json()
    assert body["total"] == len(body["items"]) > 0


@P1
def test_websocket_connect(client: httpx.Client) -> None:
    resp = client.get("/ws/connect")
    assert resp.status_code == 200, f"GET /ws/connect -> HTTP {resp.status_code}"
    assert resp.json()["protocol"] == "json"


@P1
def test_user_profile_requires_token(client: httpx.Client) -> None:
    assert client.get("/api/users/me").status_code == 401


@P1
def test_user_profile(client: httpx.Client, auth: dict[str, str]) -> None:
    resp = client.get("/api/users/me", headers=auth)
    assert resp.status_code == 200, f"GET /api/users/me -> HTTP {resp.status_code}"
    assert resp.json()["username"] == "demo"


@P2
@pytest.mark.depends_on("test_websocket_connect")
def test_websocket_echo(client: httpx.Client) -> None:
    session = client.get("/ws/connect").json()["session"]
    resp = client.post("/ws/echo", json={"session": session, "message": "ping"})
    assert resp.status_code == 200, f"POST /ws/echo -> HTTP {resp.status_code}"
    assert resp.json() == {"session": session, "echo": "ping"}


@P2
def test_payments_upstream_reachable(client: httpx.Client) -> None:
    resp = client.get("/api/connectivity/payments")
    resp.raise_for_status()
    assert resp.json() == {"upstream": "payments", "ok": True}


@P2
def test_product_detail(client: httpx.Client) -> None:
    body = client.get("/api/products/1").json()
    assert body["name"] == "Espresso beans"
    assert body["price"] == 12.5


@P2
def test_create_cart(cart: dict[str, Any]) -> None:
    assert cart["id"].startswith("cart-")
    assert cart["items"] == []


@P2
def test_add_item_to_cart(client: httpx.Client, cart: dict[str, Any]) -> None:
    resp = add(client, cart["id"], product_id=3, quantity=2)
    assert resp.status_code == 200
    assert resp.json()["items"] == [{"product_id": 3, "quantity": 2}]


@P2
@pytest.mark.depends_on("test_add_item_to_cart")
def test_place_order(client: httpx.Client, auth: dict[str, str], cart: dict[str, Any]) -> None:
    add(client, cart["id"], product_id=1, quantity=2).raise_for_status()
    resp = client.post("/api/orders", json={"cart_id": cart["id"]}, headers=auth)
    assert resp.status_code == 201, f"POST /api/orders -> HTTP {resp.status_code}"
    assert resp.json()["total"] == 25.0


@P2
def test_order_requires_auth(client: httpx.Client, cart: dict[str, Any]) -> None:
    add(client, cart["id"], product_id=1).raise_for_status()
    assert client.post("/api/orders", json={"cart_id": cart["id"]}).status_code == 401
