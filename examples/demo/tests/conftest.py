"""Fixtures for the demo-shop e2e suite: a client for BASE_URL and the API token."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest


@pytest.fixture(scope="session")
def base_url() -> str:
    return os.environ.get("BASE_URL", "http://127.0.0.1:18080").rstrip("/")


@pytest.fixture(scope="session")
def client(base_url: str) -> Iterator[httpx.Client]:
    # A short timeout: a hung staging app should fail a test quickly, as a Timeout.
    with httpx.Client(base_url=base_url, timeout=5.0) as c:
        yield c


@pytest.fixture(scope="session")
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {os.environ.get('API_TOKEN', 'demo-token')}"}


@pytest.fixture
def cart(client: httpx.Client) -> dict[str, Any]:
    resp = client.post("/api/cart")
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body


def add(client: httpx.Client, cart_id: str, product_id: int, quantity: int = 1) -> httpx.Response:
    return client.post(
        f"/api/cart/{cart_id}/items", json={"product_id": product_id, "quantity": quantity}
    )
