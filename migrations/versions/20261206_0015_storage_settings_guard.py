"""The storage allow-list in `organizations.settings` is the operator's: the application role cannot change it.

Why: `organizations.settings["storage"]["allowed_uris"]` lets an organization's drift configuration read S3
prefixes outside the artifact store, with the workers' credentials. `mlops_app` keeps its column grant on
`settings` (tenants set their retention policy there, and other services of the platform may let tenant admins
edit settings), so a column grant cannot protect one key of it. A trigger refuses any change to
`settings->'storage'` made as `mlops_app`; the owner (migrations, a DBA) and `mlops_maintenance` (platform
administration) can still set it.

Zero downtime: CREATE FUNCTION takes no table lock; CREATE TRIGGER takes a brief SHARE ROW EXCLUSIVE lock on
`organizations` (a small, rarely written table), under a short lock_timeout.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 20:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "mlops_guard_storage_settings"
TRIGGER = "organizations_storage_settings_guard"


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    # SECURITY INVOKER (the default): current_user is the role the statement runs as, mlops_app for the application
    op.execute(f"""
        CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF current_user = 'mlops_app' THEN
                RAISE EXCEPTION 'organizations.settings.storage is set by the platform operator, not the application'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END
        $$
    """)
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON organizations")
    op.execute(f"""
        CREATE TRIGGER {TRIGGER} BEFORE UPDATE OF settings ON organizations
        FOR EACH ROW WHEN (NEW.settings -> 'storage' IS DISTINCT FROM OLD.settings -> 'storage')
        EXECUTE FUNCTION {FUNCTION}()
    """)


def downgrade() -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON organizations")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
