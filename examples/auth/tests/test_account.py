"""The account area with a credential the app does not accept: three tests get 403."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.priority("P1")
def test_health(client: httpx.Client) -> None:
    assert client.get("/health").json()["status"] == "ok"


@pytest.mark.priority("P1")
def test_catalogue_is_public(client: httpx.Client) -> None:
    assert client.get("/api/products").json()["total"] > 0


@pytest.mark.priority("P1")
def test_profile(client: httpx.Client, auth: dict[str, str]) -> None:
    resp = client.get("/api/users/me", headers=auth)
    assert resp.status_code == 200, f"GET /api/users/me -> HTTP {resp.status_code}"


@pytest.mark.priority("P2")
def test_order_history(client: httpx.Client, auth: dict[str, str]) -> None:
    client.get("/api/orders", headers=auth).raise_for_status()


@pytest.mark.priority("P2")
def test_place_order(client: httpx.Client, auth: dict[str, str]) -> None:
    cart = client.post("/api/cart").json()["id"]
    client.post(f"/api/cart/{cart}/items", json={"product_id": 1}).raise_for_status()
    resp = client.post("/api/orders", json={"cart_id": cart}, headers=auth)
    assert resp.status_code == 201, f"POST /api/orders -> HTTP {resp.status_code}"
