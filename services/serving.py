"""The serving backend: the only code that talks to serving platforms (interface and the `http` backend).

A backend is chosen by `deployment_config["serving"]["backend"]`; the rollout flows call only `apply` and
`status`. The `http` contract (README, "Rollout and rollback"):

- `PUT {control_url}` with the deployment and its `traffic` (a list of versions and percents summing to 100,
  or `[]` to stop serving); any 2xx accepts it.
- `GET {control_url}` answers `{"traffic": [{"model_version": ..., "percent": ..., "ready": bool}, ...]}`.
- `GET` of the endpoint's origin plus `health_check_path` answers 200 when the endpoint is healthy.

5xx answers, refused connections and timeouts raise `BackendUnavailable` (the caller retries within its health
budget); a 4xx from the control URL raises `BackendRejected` (permanent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from core.errors import MlopsError, TransientError

BACKENDS = ("http",)


class BackendUnavailable(TransientError):
    """The platform did not answer usefully (5xx, refused, timed out); worth retrying."""


class BackendRejected(MlopsError):
    """The platform refused the request (4xx): retrying the same request cannot help."""

    exit_code = 1


@dataclass(frozen=True)
class DeploymentSpec:
    """What a backend needs to know about a deployment (plain data, no ORM object)."""

    deployment_id: str
    name: str
    environment: str
    instance_type: str | None
    min_instances: int | None
    max_instances: int | None
    auto_scaling: bool | None
    config: dict[str, Any]  # deployment_config without `serving`
    control_url: str
    endpoint_url: str | None = None
    health_check_path: str | None = "/health"

    def health_url(self) -> str | None:
        """The endpoint's origin plus `health_check_path`; None when the deployment has no endpoint."""
        if not self.endpoint_url or not self.health_check_path:
            return None
        parts = urlsplit(self.endpoint_url)
        path = self.health_check_path if self.health_check_path.startswith("/") else "/" + self.health_check_path
        return f"{parts.scheme}://{parts.netloc}{path}"


@dataclass(frozen=True)
class ServingStatus:
    """What the platform reports: its traffic list and the endpoint's health check (None: not checked)."""

    traffic: list[dict[str, Any]] = field(default_factory=list)
    endpoint_healthy: bool | None = None
    health_detail: str = ""


class ServingBackend(Protocol):
    def apply(self, deployment: DeploymentSpec, traffic: list[dict[str, Any]], *, timeout: float) -> None:
        """Ask the platform to serve `traffic`. Raises BackendUnavailable or BackendRejected."""
        ...

    def status(self, deployment: DeploymentSpec, *, timeout: float) -> ServingStatus:
        """What the platform serves now. Raises BackendUnavailable or BackendRejected."""
        ...


class HttpBackend:
    """The `http` backend: one JSON control URL per deployment and the endpoint's own health check."""

    def apply(self, deployment: DeploymentSpec, traffic: list[dict[str, Any]], *, timeout: float) -> None:
        body = {
            "deployment_id": deployment.deployment_id,
            "name": deployment.name,
            "environment": deployment.environment,
            "instance_type": deployment.instance_type,
            "min_instances": deployment.min_instances,
            "max_instances": deployment.max_instances,
            "auto_scaling": deployment.auto_scaling,
            "config": deployment.config,
            "traffic": traffic,
        }
        self._request("PUT", deployment.control_url, timeout, json=body)

    def status(self, deployment: DeploymentSpec, *, timeout: float) -> ServingStatus:
        response = self._request("GET", deployment.control_url, timeout)
        try:
            traffic = response.json()["traffic"]
        except (ValueError, KeyError, TypeError):
            raise BackendUnavailable(f"GET {deployment.control_url}: no JSON traffic list in the answer") from None
        if not isinstance(traffic, list):
            raise BackendUnavailable(f"GET {deployment.control_url}: 'traffic' is not a list")
        health_url = deployment.health_url()
        if health_url is None:
            return ServingStatus(traffic=traffic)
        try:
            with httpx.Client(timeout=timeout) as client:
                code = client.get(health_url).status_code
        except httpx.HTTPError as exc:
            return ServingStatus(traffic, False, f"GET {health_url}: {_describe(exc)}")
        return ServingStatus(traffic, code == 200, f"GET {health_url}: {code}")

    @staticmethod
    def _request(method: str, url: str, timeout: float, **kwargs: Any) -> httpx.Response:
        try:
            with httpx.Client(timeout=timeout) as client:
                response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{method} {url}: {_describe(exc)}") from None
        if response.status_code >= 500:
            raise BackendUnavailable(f"{method} {url}: {response.status_code}")
        if response.status_code >= 400:
            raise BackendRejected(f"{method} {url}: {response.status_code} {response.text[:200]}".strip())
        if response.status_code >= 300:
            raise BackendRejected(f"{method} {url}: unexpected {response.status_code}")
        return response


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    return type(exc).__name__


def backend_for(name: str) -> ServingBackend:
    """The backend named in the serving configuration. Raises BackendRejected for an unknown one."""
    if name == "http":
        return HttpBackend()
    raise BackendRejected(f"unknown serving backend {name!r}")
