"""A tenant whose production deployment is driven by a local serving stub, and what tests assert on."""

from __future__ import annotations

import json
import uuid
from typing import Any

from demo.serving_stub import ServingStub
from services.storage import open_store
from tests.factories import Db

FAST = {
    "steps": [10, 50, 100],
    "bake_seconds": 0.1,
    "health_timeout_seconds": 0.5,
    "poll_interval_seconds": 0.05,
    "max_anomalies": 2,
    "lease_grace_seconds": 1.5,
}


class RolloutDb(Db):
    def __init__(self, url: str, tenant, stub: ServingStub) -> None:
        super().__init__(url)
        self.t = tenant
        self.stub = stub
        self.deployment_id = tenant["deployment_production"]

    def prepare(self, **serving: Any) -> None:
        """Artifacts in the local store for every version; the production deployment driven by the stub."""
        store = open_store()
        for key, version in (("v100", "1.0.0"), ("v110", "1.1.0"), ("v120", "1.2.0")):
            info = store.put(f"models/alpha/{version}/model.bin", f"model {version}".encode())
            self.run(
                "UPDATE model_versions SET model_file_path = :p, model_size_bytes = :s WHERE id = :i",
                p=store.uri_for(info.key),
                s=info.size,
                i=self.t[key],
            )
        self.configure(**serving)

    def configure(self, control_url: str | None = None, **serving: Any) -> None:
        config = {
            "env": {"LOG_LEVEL": "info"},
            "serving": {
                "backend": "http",
                "control_url": control_url or self.stub.control_url("fraud-api-production"),
                **FAST,
                **serving,
            },
        }
        self.run(
            "UPDATE deployments SET deployment_config = CAST(:c AS jsonb), endpoint_url = :e WHERE id = :d",
            c=json.dumps(config),
            e=self.stub.endpoint_url("fraud-api-production"),
            d=self.deployment_id,
        )

    def deployment(self) -> dict[str, Any]:
        return dict(
            self.all(
                "SELECT d.status, v.version, d.deployed_at, d.terminated_at FROM deployments d "
                "JOIN model_versions v ON v.id = d.model_version_id WHERE d.id = :d",
                d=self.deployment_id,
            )[0]
        )

    def history(self) -> list[tuple[str, str, str]]:
        """(action, version, status) oldest first, the factory's first `deploy` row included."""
        rows = self.all(
            "SELECT h.action, v.version, h.status FROM deployment_history h JOIN model_versions v "
            "ON v.id = h.model_version_id WHERE h.deployment_id = :d ORDER BY h.started_at, "
            "h.completed_at NULLS LAST, h.action = 'rollback'",
            d=self.deployment_id,
        )
        return [(r["action"], r["version"], r["status"]) for r in rows]

    def history_rows(self) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.all(
                "SELECT * FROM deployment_history WHERE deployment_id = :d ORDER BY started_at, action = 'rollback'",
                d=self.deployment_id,
            )
        ]

    def stages(self) -> dict[str, str]:
        rows = self.all("SELECT version, stage FROM model_versions WHERE model_id = :m", m=self.t["model"])
        return {r["version"]: r["stage"] for r in rows}

    def transitions(self) -> list[tuple[str, str, str, str]]:
        rows = self.all(
            "SELECT v.version, t.from_stage, t.to_stage, coalesce(t.reason, '') AS reason FROM "
            "model_stage_transitions t JOIN model_versions v ON v.id = t.model_version_id WHERE "
            "t.from_stage IS NOT NULL AND t.organization_id = :o ORDER BY t.created_at, v.version",
            o=self.t["org"],
        )
        return [(r["version"], r["from_stage"], r["to_stage"], r["reason"]) for r in rows]

    def audit(self) -> list[str]:
        rows = self.all(
            "SELECT action FROM audit_logs WHERE organization_id = :o AND action <> 'test.seed' "
            "ORDER BY created_at, action",
            o=self.t["org"],
        )
        return [r["action"] for r in rows]

    def events(self) -> list[tuple[str, str, str]]:
        rows = self.all(
            "SELECT trigger_type, event_type, severity FROM notification_events WHERE organization_id = :o "
            "AND event_type <> 'test.event' ORDER BY created_at, trigger_type",
            o=self.t["org"],
        )
        return [(r["trigger_type"], r["event_type"], r["severity"]) for r in rows]

    def alerts(self) -> list[tuple[str, str]]:
        rows = self.all(
            "SELECT severity, title FROM alerts WHERE deployment_id = :d AND alert_type = 'custom'",
            d=self.deployment_id,
        )
        return [(r["severity"], r["title"]) for r in rows]

    def anomaly(self, count: int) -> None:
        self.run(
            "INSERT INTO model_monitoring (deployment_id, metric_name, value, threshold_max) "
            "SELECT :d, 'latency_p95_ms', 500, 50 FROM generate_series(1, :n)",
            d=self.deployment_id,
            n=count,
        )


def new_id() -> str:
    return str(uuid.uuid4())
