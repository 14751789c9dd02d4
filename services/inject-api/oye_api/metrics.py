"""The inject-api's Prometheus metrics: one registry per app, filled by one ASGI middleware.

Every HTTP request is counted by method, route template (``/api/inject/{chargePointId:path}``,
never the raw path: charge point ids are unbounded) and status. Requests to the two
injection routes are also timed by OCPP action and outcome; the action is read from the
request body as the route reads it (a copy of at most :data:`MAX_BODY_CAPTURE` bytes) and
the outcome from the status, which :mod:`oye_api.replies` derives from the outcome in one
place (:data:`oye_shared.inject.HTTP_STATUS`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oye_shared.inject import HTTP_STATUS
from oye_shared.metric_labels import LATENCY_BUCKETS, OTHER, action_label

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: HTTP status of an injection -> its outcome (the inverse of ``HTTP_STATUS``).
OUTCOMES = {status: outcome.value for outcome, status in HTTP_STATUS.items()}
INJECT_ROUTE = "/api/inject/{chargePointId:path}"
SMART_CHARGING_ROUTE = "/api/chargers/{chargePointId:path}/smart-charging"
#: Bodies longer than this are not read for their action (it is then ``other``).
MAX_BODY_CAPTURE = 64 * 1024


def injected_action(route: str, body: bytes | None) -> str:
    """The OCPP action a request to an injection route sends to the charger."""
    try:
        payload: Any = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict):
        return OTHER
    if route == SMART_CHARGING_ROUTE:
        # A limit is a SetChargingProfile, in every OCPP version; "clear" clears one.
        return "ClearChargingProfile" if payload.get("action") == "clear" else "SetChargingProfile"
    return action_label(payload.get("action"))


class ApiMetrics:
    """The app's registry and metrics."""

    def __init__(self, *, nats_connected: Callable[[], bool]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "oye_api_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "oye_api_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=(*LATENCY_BUCKETS, 60.0),  # an injection waits its timeout plus a margin
            registry=self.registry,
        )
        self.injection_seconds = Histogram(
            "oye_api_injection_duration_seconds",
            "Injections (POST /api/inject, /smart-charging) from request to answer, by OCPP "
            "action and outcome (result, call_error, timeout, not_connected, invalid, sent).",
            ["action", "outcome"],
            buckets=(*LATENCY_BUCKETS, 60.0),  # an injection waits its timeout plus a margin
            registry=self.registry,
        )
        self.registry.register(_NatsCollector(nats_connected))
        ProcessCollector(registry=self.registry)

    def answered(
        self, method: str, route: str, status: int, seconds: float, body: bytes | None
    ) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)
        if route in (INJECT_ROUTE, SMART_CHARGING_ROUTE) and status in OUTCOMES:
            action = injected_action(route, body)
            self.injection_seconds.labels(action, OUTCOMES[status]).observe(seconds)


class _NatsCollector:
    def __init__(self, nats_connected: Callable[[], bool]) -> None:
        self._nats_connected = nats_connected

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> list[Metric]:
        family = self._family()
        family.add_metric([], 1 if self._nats_connected() else 0)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("oye_nats_connected", "1 while connected to NATS, else 0.")


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: streaming responses pass through)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # unless the app answers: what the server will send for an exception
        path: str = scope.get("path", "")
        captured: bytearray | None = None
        if scope.get("method") == "POST" and _may_inject(path):
            captured = bytearray()
            inner_receive = receive

            async def receive() -> Message:
                message = await inner_receive()
                if message["type"] == "http.request" and len(captured) <= MAX_BODY_CAPTURE:
                    captured.extend(message.get("body", b"")[: MAX_BODY_CAPTURE + 1])
                return message

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            route = getattr(scope.get("route"), "path", None) or OTHER
            body = bytes(captured) if captured and len(captured) <= MAX_BODY_CAPTURE else None
            method = scope.get("method", "")
            self.metrics.answered(
                method if method in METHODS else OTHER,
                route,
                status,
                time.perf_counter() - began,
                body,
            )


def _may_inject(path: str) -> bool:
    return path.startswith("/api/inject/") or path.endswith("/smart-charging")
