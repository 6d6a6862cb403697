"""Membership: admins add members, within the plan's max_users, audited; the limit holds under concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, pool, text

from core.errors import Conflict, InvalidInput, PermissionDenied
from services.auth import resolve_principal
from services.members import add_member


def scalar(url: str, sql: str):
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar()
    engine.dispose()
    return value


def set_max_users(url: str, n: int) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("UPDATE organizations SET max_users = :n WHERE slug = 'alpha'"), {"n": n})
    engine.dispose()


class TestAddMember:
    def test_admin_adds_a_member_and_it_is_audited(self, tenants_db):
        url, _, _ = tenants_db
        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        add_member(admin, email="new@alpha.example", first_name="New", last_name="Person", role="developer")
        assert resolve_principal(organization="alpha", as_email="new@alpha.example").org_role == "developer"
        assert scalar(url, "SELECT count(*) FROM audit_logs WHERE action = 'organization_membership.create'") == 1

    def test_limit_of_the_plan_is_enforced(self, tenants_db):
        url, _, _ = tenants_db
        set_max_users(url, 3)  # alpha already has three members
        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        with pytest.raises(Conflict, match="limit of 3 users"):
            add_member(admin, email="new@alpha.example", first_name="New", last_name="Person", role="viewer")
        assert scalar(url, "SELECT count(*) FROM users WHERE email = 'new@alpha.example'") == 0

    def test_concurrent_additions_cannot_pass_the_limit(self, tenants_db):
        url, _, _ = tenants_db
        set_max_users(url, 5)
        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")

        def attempt(i: int) -> str:
            try:
                add_member(admin, email=f"u{i}@alpha.example", first_name="U", last_name=str(i), role="viewer")
                return "added"
            except Conflict:
                return "refused"

        with ThreadPoolExecutor(8) as pool_:
            outcomes = list(pool_.map(attempt, range(8)))
        assert outcomes.count("added") == 2
        members = "SELECT count(*) FROM organization_memberships m JOIN organizations o ON o.id = m.organization_id"
        assert scalar(url, members + " WHERE o.slug = 'alpha'") == 5

    def test_only_admins_add_members(self, tenants_db):
        url, _, _ = tenants_db
        developer = resolve_principal(organization="alpha", as_email="developer@alpha.example")
        with pytest.raises(PermissionDenied):
            add_member(developer, email="x@alpha.example", first_name="X", last_name="Y", role="viewer")
        assert scalar(url, "SELECT count(*) FROM users WHERE email = 'x@alpha.example'") == 0
        assert (
            scalar(url, "SELECT count(*) FROM audit_logs WHERE action = 'organization_membership.create.denied'") == 1
        )

    def test_bad_role_and_duplicates(self, tenants_db):
        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        with pytest.raises(InvalidInput, match="unknown role 'owner'"):
            add_member(admin, email="x@alpha.example", first_name="X", last_name="Y", role="owner")
        with pytest.raises(Conflict, match="already a member"):
            add_member(admin, email="viewer@alpha.example", first_name="V", last_name="W", role="viewer")


class TestInvitations:
    """A user of another organization joins only by accepting; nothing acts in their name before."""

    def test_existing_user_is_invited_then_accepts(self, tenants_db):
        from services.apikeys import create_key
        from services.members import accept_invitation

        url, _, _ = tenants_db
        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        member = add_member(admin, email="Developer@Beta.example", first_name="D", last_name="B", role="admin")
        assert member.pending
        assert scalar(url, "SELECT count(*) FROM users WHERE lower(email) = 'developer@beta.example'") == 1
        # before accepting: not a member, no key can be minted in their name, no project role
        with pytest.raises(PermissionDenied, match="not a member of organization 'alpha'"):
            resolve_principal(organization="alpha", as_email="developer@beta.example")
        with pytest.raises(PermissionDenied, match="not a member of alpha"):
            create_key(admin, user_email="developer@beta.example", name="sneaky", scopes=["drift:run"])
        assert scalar(url, "SELECT count(*) FROM api_keys WHERE name = 'sneaky'") == 0

        accepted = accept_invitation(organization="alpha", email="developer@beta.example")
        assert accepted.role == "admin"
        assert resolve_principal(organization="alpha", as_email="developer@beta.example").org_role == "admin"
        actions = scalar(
            url,
            "SELECT string_agg(action, ',' ORDER BY a.created_at) FROM audit_logs a JOIN organizations o "
            "ON o.id = a.organization_id WHERE o.slug = 'alpha' AND action LIKE 'organization_membership.%'",
        )
        assert actions == "organization_membership.invite,organization_membership.accept"
        assert scalar(
            url,
            "SELECT invited_by IS NOT NULL AND joined_at IS NOT NULL FROM organization_memberships "
            "m JOIN users u ON u.id = m.user_id WHERE u.email = 'developer@beta.example' "
            "AND m.role = 'admin'",
        )

    def test_accepting_without_an_invitation_is_not_found(self, tenants_db):
        from core.errors import NotFound
        from services.members import accept_invitation

        with pytest.raises(NotFound, match="no pending invitation"):
            accept_invitation(organization="alpha", email="developer@beta.example")
