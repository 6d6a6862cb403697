"""`mlops demo` step: a few audit rows from 2023 (seeded once), a retention dry run, then the real run."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from db.models import AuditLog, Organization, RetentionArchive, User
from db.session import system_session
from demo.seed import ADMIN, ORG
from flows.retention import enforce_retention
from flows.runtime import run_flow

Echo = Callable[[str], None]
OLD_MONTHS = ("2023-03", "2023-04")
ROWS_PER_MONTH = 5


def seed_old_audit_rows() -> int:
    """Insert the demo's old audit rows unless they exist or their month was archived already; returns how many."""
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, "mlops-demo-retention")
    with system_session() as session:  # seeding, like demo.seed: the owner writes the demo's history
        org_id = session.scalar(select(Organization.id).where(Organization.slug == ORG))
        admin = session.scalar(select(User.id).where(User.email == ADMIN))
        archived = set(
            session.scalars(select(RetentionArchive.period).where(RetentionArchive.organization_id == org_id))
        )
        rows = [
            {
                "id": uuid.uuid5(namespace, f"{month}-{i}"),
                "organization_id": org_id,
                "user_id": admin,
                "action": "model_version.promote",
                "resource_type": "model_version",
                "details": {"to_stage": "production", "reason": f"demo history {month} #{i}"},
                "ip_address": "10.0.0.7",
                "user_agent": "mlops-cli/0.1.0",
                "created_at": datetime.fromisoformat(f"{month}-01T09:00:00+00:00") + timedelta(days=3 * i),
            }
            for month in OLD_MONTHS
            if month not in archived
            for i in range(ROWS_PER_MONTH)
        ]
        if not rows:
            return 0
        stmt = insert(AuditLog).values(rows).on_conflict_do_nothing(index_elements=["id"]).returning(AuditLog.id)
        return len(session.execute(stmt).all())


def run_retention_demo(echo: Echo) -> str:
    """Seed old audit rows, dry-run, then enforce retention; returns a line for the summary table."""
    seeded = seed_old_audit_rows()
    echo(
        f"seeded {seeded} audit rows from {' and '.join(OLD_MONTHS)}" if seeded else "old audit rows: archived already"
    )
    dry = run_flow(enforce_retention, orchestrate=True, organization=ORG, dry_run=True)
    for category in dry["organizations"][0]["categories"]:
        if category["count"] or category["held"]:
            echo(f"   dry run: {category['category']}: would remove {category['count']}, keep {category['held']}")
    real = run_flow(enforce_retention, orchestrate=True, organization=ORG)
    report = real["organizations"][0]
    audit = next(c for c in report["categories"] if c["category"] == "audit_logs")
    if not audit["count"]:
        echo("unchanged: no audit row is past its retention period (archived and deleted on an earlier run)")
    else:
        echo(f"archived and deleted {audit['count']} audit rows as of {datetime.now(UTC):%Y-%m-%d}; archives:")
        for key in audit["archive_keys"]:
            echo(f"   {key}")
    echo("   restore one with: mlops retention restore audit_logs --org acme --month 2023-03")
    if not audit["count"]:
        return "0 (unchanged)"
    return f"{audit['count']} audit rows, archived to {len(audit['archive_keys'])} monthly files, then deleted"
