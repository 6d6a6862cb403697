"""Notification dispatch: `notification_deliveries` and `notification_alert_state`.

Why (issue 10): `dispatch-notifications` is the only sender. It fans every outbox event out to the channels its
organization's rules match, one `notification_deliveries` row per (event, channel) (unique: an event matched by
two rules to one channel is delivered once), then claims due rows with `FOR UPDATE SKIP LOCKED` and a claim
expiry, sends, and records the outcome. The row is the per-channel delivery log: status, attempts, next attempt
time, last error (never a secret), response code. `claim_token` lets only the dispatcher that holds the claim
record the outcome (a run whose claim expired cannot overwrite the run that took over). `group_key` (the
deployment) lets the events of one deployment within `group_wait` go out as one message per channel.

`notification_alert_state` records, per (alert, channel), when the alert was last notified there and whether its
resolution was: `repeat_interval` (an open alert is re-notified no more often than that) and "one resolution
message" need it, and the delivery log cannot answer it once retention has deleted old deliveries.

Grants: the application fans out, claims and records (no DELETE); the maintenance role reads and deletes old
deliveries (retention). Zero downtime: two new empty tables; nothing existing is locked beyond the foreign keys'
brief SHARE ROW EXCLUSIVE locks on the referenced tables, under a short lock_timeout.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-06 15:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mlops_app"
MAINTENANCE = "mlops_maintenance"
ORG = "(SELECT mlops_current_org())"
DELIVERIES = "notification_deliveries"
STATE = "notification_alert_state"
STATUSES = ("pending", "sending", "delivered", "failed", "dead")


def visible(table: str, column: str, target: str, nullable: bool = False) -> str:
    inner = f"EXISTS (SELECT 1 FROM {target} r WHERE r.id = {table}.{column})"
    return f"({table}.{column} IS NULL OR {inner})" if nullable else inner


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        DELIVERIES,
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("channel_id", sa.UUID(), nullable=False),
        sa.Column("rule_id", sa.UUID(), nullable=True),
        sa.Column("group_key", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.UUID(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'delivered', 'failed', 'dead')",
            name=op.f("ck_notification_deliveries__status"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_notification_deliveries__organization_id__organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["notification_events.id"],
            name=op.f("fk_notification_deliveries__event_id__notification_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.id"],
            name=op.f("fk_notification_deliveries__channel_id__notification_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["notification_rules.id"],
            name=op.f("fk_notification_deliveries__rule_id__notification_rules"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
        sa.UniqueConstraint("event_id", "channel_id", name=op.f("uq_notification_deliveries__event_id_channel_id")),
    )
    op.create_index(
        "ix_notification_deliveries__due",
        DELIVERIES,
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'sending', 'failed')"),
    )
    op.create_index(
        "ix_notification_deliveries__group",
        DELIVERIES,
        ["channel_id", "group_key"],
        unique=False,
        postgresql_where=sa.text("status = 'pending' AND group_key IS NOT NULL"),
    )
    op.create_index(
        "ix_notification_deliveries__organization_id_updated_at",
        DELIVERIES,
        ["organization_id", "updated_at"],
        unique=False,
    )
    op.create_table(
        STATE,
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("alert_id", sa.UUID(), nullable=False),
        sa.Column("channel_id", sa.UUID(), nullable=False),
        sa.Column("last_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_notification_alert_state__organization_id__organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_notification_alert_state__alert_id__alerts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.id"],
            name=op.f("fk_notification_alert_state__channel_id__notification_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_alert_state")),
        sa.UniqueConstraint("alert_id", "channel_id", name=op.f("uq_notification_alert_state__alert_id_channel_id")),
    )
    for table in (DELIVERIES, STATE):
        op.execute(
            f"CREATE TRIGGER trg_{table}__updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION mlops_set_updated_at()"
        )
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    deliveries_check = " AND ".join(
        [
            f"{DELIVERIES}.organization_id = {ORG}",
            visible(DELIVERIES, "event_id", "notification_events"),
            visible(DELIVERIES, "channel_id", "notification_channels"),
            visible(DELIVERIES, "rule_id", "notification_rules", nullable=True),
        ]
    )
    state_check = " AND ".join(
        [
            f"{STATE}.organization_id = {ORG}",
            visible(STATE, "alert_id", "alerts"),
            visible(STATE, "channel_id", "notification_channels"),
        ]
    )
    for table, check in ((DELIVERIES, deliveries_check), (STATE, state_check)):
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING (organization_id = {ORG}) WITH CHECK ({check})")
    # dispatch fans out, claims and records outcomes; `mlops deliveries retry` re-queues: never deletes
    op.execute(
        f"GRANT SELECT, INSERT, UPDATE (status, attempts, next_attempt_at, claim_expires_at, claim_token, last_error, "
        f"response_code, delivered_at) ON {DELIVERIES} TO {APP}"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE (last_notified_at, resolution_notified_at) ON {STATE} TO {APP}")
    # retention deletes deliveries 90 days after they were final (db/queries/retention.py)
    op.execute(f"GRANT SELECT, DELETE ON {DELIVERIES} TO {MAINTENANCE}")


def downgrade() -> None:
    op.drop_table(STATE)
    op.drop_table(DELIVERIES)
