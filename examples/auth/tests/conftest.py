"""Fixtures for the auth example: a client for BASE_URL and the (wrong) API token."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture(scope="session")
def client() -> Iterator[httpx.Client]:
    base_url = os.environ.get("BASE_URL", "http://127.0.0.1:18081")
    with httpx.Client(base_url=base_url, timeout=5.0) as c:
        yield c


@pytest.fixture(scope="session")
def auth() -> dict[str, str]:
    # validation.yaml sets API_TOKEN=wrong-token: the app accepts only demo-token.
    return {"Authorization": f"Bearer {os.environ.get('API_TOKEN', 'demo-token')}"}
