"""demo-shop: a small staging app for greenloop's examples. Standard library only.

A JSON API (products, carts, orders, the current user) plus "connectivity" endpoints that
depend on upstream pools. The pools come up only on a restart: on the first boot after
the state dir was reset, connectivity endpoints answer 503, on every later boot 200. That
is the staging failure greenloop is built for — a redeploy fixes it.

Run it through ctl.py (start|stop|restart|status|reset), not directly.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

VERSION = "1.4.2"
BOOT_FILE = "boots"
DEFAULT_TOKEN = "demo-token"

PRODUCTS: list[dict[str, Any]] = [
    {"id": 1, "name": "Espresso beans", "category": "coffee", "price": 12.50},
    {"id": 2, "name": "Filter papers", "category": "supplies", "price": 3.20},
    {"id": 3, "name": "Ceramic mug", "category": "kitchen", "price": 9.00},
    {"id": 4, "name": "Decaf beans", "category": "coffee", "price": 11.00},
    {"id": 5, "name": "Milk frother", "category": "kitchen", "price": 24.90},
    {"id": 6, "name": "Cold brew kit", "category": "coffee", "price": 19.99},
]
PRODUCTS_BY_ID = {p["id"]: p for p in PRODUCTS}

UPSTREAMS = ("payments", "inventory", "search")


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def record_boot(state_dir: Path) -> int:
    """Count this boot in the state dir; returns 1 on the first boot since a reset."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / BOOT_FILE
    try:
        boots = int(path.read_text(encoding="utf-8").strip() or 0)
    except (FileNotFoundError, ValueError):
        boots = 0
    boots += 1
    path.write_text(f"{boots}\n", encoding="utf-8")
    return boots


class Shop:
    """In-memory carts and orders. One lock: the handler threads share it."""

    def __init__(self, boot: int, token: str) -> None:
        self.boot = boot
        self.token = token
        # Pools come up on a restart only: the failure greenloop's demo redeploys away.
        self.upstreams_ready = boot > 1
        self.lock = threading.Lock()
        self.carts: dict[str, dict[int, int]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.sessions = 0

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids):05d}"


Route = tuple[str, re.Pattern[str], Callable[..., tuple[HTTPStatus, Any]]]


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive keeps a test suite's requests cheap; every response sets
    # Content-Length, which keep-alive needs.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY each keep-alive request
    # waits ~40 ms for a delayed ACK (Nagle), which makes a 40-test suite crawl.
    disable_nagle_algorithm = True
    server_version = f"demo-shop/{VERSION}"
    shop: Shop  # set on the subclass built in serve()
    _body: bytes = b""

    # --- plumbing -------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _send(self, status: HTTPStatus, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        request_id = self.headers.get("X-Request-ID")
        if request_id:
            self.send_header("X-Request-ID", request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json_body(self) -> Any:
        if not self._body:
            return {}
        try:
            return json.loads(self._body)
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "request body is not valid JSON") from None

    def _require_user(self) -> dict[str, Any]:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise HttpError(HTTPStatus.UNAUTHORIZED, "missing bearer token")
        if auth.removeprefix("Bearer ").strip() != self.shop.token:
            raise HttpError(HTTPStatus.FORBIDDEN, "token not accepted")
        return {"id": 7, "username": "demo", "email": "demo@shop.example", "roles": ["buyer"]}

    def _require_upstream(self, name: str) -> None:
        if not self.shop.upstreams_ready:
            raise HttpError(
                HTTPStatus.SERVICE_UNAVAILABLE, f"upstream pool not initialised: {name}"
            )

    def _dispatch(self, method: str) -> None:
        # Read the body before anything can fail: an unread body would be parsed as the
        # next request on this keep-alive connection.
        length = int(self.headers.get("Content-Length") or 0)
        self._body = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            allowed = False
            for route_method, pattern, handler in ROUTES:
                match = pattern.fullmatch(url.path)
                if match is None:
                    continue
                allowed = True
                if route_method == method or (route_method == "GET" and method == "HEAD"):
                    status, body = handler(self, query, **match.groupdict())
                    self._send(status, body)
                    return
            if allowed:
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed here")
            raise HttpError(HTTPStatus.NOT_FOUND, f"no route for {url.path}")
        except HttpError as exc:
            headers = {"Retry-After": "5"} if exc.status == HTTPStatus.SERVICE_UNAVAILABLE else {}
            self._send(exc.status, {"error": exc.message}, headers)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # --- endpoints ------------------------------------------------------------

    def health(self, query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        # pid lets ctl.py tell its own server from whatever else might hold the port.
        return HTTPStatus.OK, {"status": "ok", "boot": self.shop.boot, "pid": os.getpid()}

    def version(self, query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, {"name": "demo-shop", "version": VERSION}

    def products(self, query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        items = PRODUCTS
        if "category" in query:
            items = [p for p in items if p["category"] == query["category"]]
        if query.get("sort") == "price":
            items = sorted(items, key=lambda p: p["price"])
        try:
            offset = int(query.get("offset", 0))
            limit = int(query.get("limit", len(items)))
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "offset and limit are integers") from None
        return HTTPStatus.OK, {"items": items[offset : offset + limit], "total": len(items)}

    def product(self, query: dict[str, str], product_id: str) -> tuple[HTTPStatus, Any]:
        product = PRODUCTS_BY_ID.get(int(product_id))
        if product is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no product {product_id}")
        return HTTPStatus.OK, product

    def search(self, query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        text = query.get("q", "").strip().lower()
        if not text:
            raise HttpError(HTTPStatus.BAD_REQUEST, "query parameter q is required")
        return HTTPStatus.OK, {"items": [p for p in PRODUCTS if text in p["name"].lower()]}

    def create_cart(self, query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        self._json_body()
        with self.shop.lock:
            cart_id = self.shop.next_id("cart")
            self.shop.carts[cart_id] = {}
        return HTTPStatus.CREATED, {"id": cart_id, "items": []}

    def _cart_view(self, cart_id: str) -> dict[str, Any]:
        cart = self.shop.carts.get(cart_id)
        if cart is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no cart {cart_id}")
        items = [{"product_id": pid, "quantity": qty} for pid, qty in sorted(cart.items())]
        total = sum(PRODUCTS_BY_ID[pid]["price"] * qty for pid, qty in cart.items())
        return {"id": cart_id, "items": items, "total": round(total, 2)}

    def get_cart(self, query: dict[str, str], cart_id: str) -> tuple[HTTPStatus, Any]:
        with self.shop.lock:
            return HTTPStatus.OK, self._cart_view(cart_id)

    def add_item(self, query: dict[str, str], cart_id: str) -> tuple[HTTPStatus, Any]:
        body = self._json_body()
        product_id, quantity = body.get("product_id"), body.get("quantity", 1)
        if not isinstance(quantity, int) or quantity < 1:
            raise HttpError(HTTPStatus.BAD_REQUEST, "quantity must be a positive integer")
        if product_id not in PRODUCTS_BY_ID:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no product {product_id}")
        with self.shop.lock:
            self._cart_view(cart_id)  # 404 for an unknown cart
            cart = self.shop.carts[cart_id]
            cart[product_id] = cart.get(product_id, 0) + quantity
            view = self._cart_view(cart_id)
        return HTTPStatus.OK, view

    def remove_item(
        self, query: dict[str, str], cart_id: str, product_id: str
    ) -> tuple[HTTPStatus, Any]:
        with self.shop.lock:
            self._cart_view(cart_id)
            self.shop.carts[cart_id].pop(int(product_id), None)
            return HTTPStatus.OK, self._cart_view(cart_id)

    def me(self, query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, self._require_user()

    def place_order(self, query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        user = self._require_user()
        body = self._json_body()
        with self.shop.lock:
            cart = self._cart_view(str(body.get("cart_id")))
            if not cart["items"]:
                raise HttpError(HTTPStatus.BAD_REQUEST, "cart is empty")
            order_id = self.shop.next_id("order")
            order = {
                "id": order_id,
                "user": user["username"],
                "items": cart["items"],
                "total": cart["total"],
                "status": "placed",
            }
            self.shop.orders[order_id] = order
        return HTTPStatus.CREATED, order

    def list_orders(self, query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        self._require_user()
        with self.shop.lock:
            return HTTPStatus.OK, {"items": list(self.shop.orders.values())}

    def get_order(self, query: dict[str, str], order_id: str) -> tuple[HTTPStatus, Any]:
        self._require_user()
        with self.shop.lock:
            order = self.shop.orders.get(order_id)
        if order is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no order {order_id}")
        return HTTPStatus.OK, order

    def ws_connect(self, query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        # A JSON stand-in for a websocket handshake: the realtime gateway is an upstream.
        self._require_upstream("realtime")
        with self.shop.lock:
            self.shop.sessions += 1
            session = f"ws-{self.shop.sessions:05d}"
        return HTTPStatus.OK, {"session": session, "protocol": "json"}

    def ws_echo(self, query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        self._require_upstream("realtime")
        body = self._json_body()
        return HTTPStatus.OK, {"session": body.get("session"), "echo": body.get("message")}

    def connectivity(self, query: dict[str, str], upstream: str) -> tuple[HTTPStatus, Any]:
        if upstream not in UPSTREAMS:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no upstream {upstream}")
        self._require_upstream(upstream)
        return HTTPStatus.OK, {"upstream": upstream, "ok": True}


def _route(method: str, path: str, handler: Callable[..., tuple[HTTPStatus, Any]]) -> Route:
    return method, re.compile(path), handler


ROUTES: list[Route] = [
    _route("GET", r"/health", Handler.health),
    _route("GET", r"/api/version", Handler.version),
    _route("GET", r"/api/products", Handler.products),
    _route("GET", r"/api/products/(?P<product_id>\d+)", Handler.product),
    _route("GET", r"/api/search", Handler.search),
    _route("POST", r"/api/cart", Handler.create_cart),
    _route("GET", r"/api/cart/(?P<cart_id>[\w-]+)", Handler.get_cart),
    _route("POST", r"/api/cart/(?P<cart_id>[\w-]+)/items", Handler.add_item),
    _route(
        "DELETE", r"/api/cart/(?P<cart_id>[\w-]+)/items/(?P<product_id>\d+)", Handler.remove_item
    ),
    _route("GET", r"/api/users/me", Handler.me),
    _route("POST", r"/api/orders", Handler.place_order),
    _route("GET", r"/api/orders", Handler.list_orders),
    _route("GET", r"/api/orders/(?P<order_id>[\w-]+)", Handler.get_order),
    _route("GET", r"/ws/connect", Handler.ws_connect),
    _route("POST", r"/ws/echo", Handler.ws_echo),
    _route("GET", r"/api/connectivity/(?P<upstream>\w+)", Handler.connectivity),
]


def serve(port: int, state_dir: Path, token: str, host: str = "127.0.0.1") -> None:
    boot = record_boot(state_dir)
    shop = Shop(boot, token)
    handler = type("ShopHandler", (Handler,), {"shop": shop})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    pools = "ready" if shop.upstreams_ready else "NOT initialised (restart to bring them up)"
    print(f"demo-shop {VERSION} boot {boot} on {host}:{port}; upstream pools {pools}")
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    # Loopback by default (a process on a laptop); a pod serves its Service on 0.0.0.0.
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    serve(args.port, args.state_dir, os.environ.get("DEMO_API_TOKEN", DEFAULT_TOKEN), args.host)


if __name__ == "__main__":
    main()
