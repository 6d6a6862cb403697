"""API keys: shown once, stored as a hash, verified with expiry, revocation and scopes; refusals audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, pool, text

from core.errors import InvalidInput, NotFound, PermissionDenied
from services import apikeys
from services.auth import resolve_principal


def rows(url: str, sql: str, **params):
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        result = conn.execute(text(sql), params).mappings().all()
    engine.dispose()
    return result


@pytest.fixture
def admin(tenants_db):
    url, alpha, _ = tenants_db
    return resolve_principal(organization="alpha", as_email="admin@alpha.example")


class TestKeyMaterial:
    def test_generated_key_is_stored_only_as_its_hash(self):
        plaintext, prefix, digest = apikeys.generate_key()
        assert plaintext.startswith("mlk_") and len(plaintext) > 40
        assert plaintext.startswith(prefix) and len(prefix) == 12
        assert digest == apikeys.hash_key(plaintext) and plaintext not in digest

    @pytest.mark.parametrize(
        ("active", "expires", "deleted", "reason"),
        [
            (False, None, None, "revoked"),
            (True, datetime(2020, 1, 1, tzinfo=UTC), None, "expired"),
            (True, None, datetime(2020, 1, 1, tzinfo=UTC), "deleted"),
            (None, None, None, None),
        ],
    )
    def test_refusal_reasons(self, active, expires, deleted, reason):
        got = apikeys.key_refusal(is_active=active, expires_at=expires, deleted_at=deleted, now=datetime.now(UTC))
        assert (got is None) if reason is None else (reason in got)


class TestCreateAndAuthenticate:
    def test_create_prints_once_and_stores_the_hash(self, tenants_db, admin):
        url, alpha, _ = tenants_db
        plaintext, info = apikeys.create_key(
            admin, user_email="developer@alpha.example", name="ci", scopes=["models:promote"]
        )
        stored = rows(url, "SELECT key_hash, key_prefix, permissions FROM api_keys WHERE id = :id", id=info.id)[0]
        assert stored["key_hash"] == apikeys.hash_key(plaintext)
        assert plaintext not in str(dict(stored))
        assert stored["permissions"] == {"scopes": ["models:promote"]}
        audit = rows(url, "SELECT action, details FROM audit_logs WHERE resource_id = :id", id=info.id)
        assert audit[0]["action"] == "api_key.create" and plaintext not in str(audit[0]["details"])

    def test_key_authenticates_as_its_user_with_its_scopes_and_records_use(self, tenants_db, admin):
        url, alpha, _ = tenants_db
        plaintext, info = apikeys.create_key(
            admin, user_email="developer@alpha.example", name="ci", scopes=["models:promote:staging"]
        )
        principal = resolve_principal(organization="alpha", api_key=plaintext)
        assert principal.email == "developer@alpha.example" and principal.org_role == "developer"
        assert principal.scopes == frozenset({"models:promote:staging"}) and principal.api_key_id == info.id
        assert rows(url, "SELECT last_used_at FROM api_keys WHERE id = :id", id=info.id)[0]["last_used_at"] is not None

    def test_unknown_key_is_refused(self, tenants_db):
        with pytest.raises(PermissionDenied, match="invalid API key"):
            resolve_principal(organization="alpha", api_key="mlk_" + "x" * 43)

    def test_expired_key_is_refused_and_the_refusal_audited(self, tenants_db, admin):
        url, _, _ = tenants_db
        plaintext, info = apikeys.create_key(
            admin,
            user_email="developer@alpha.example",
            name="old",
            scopes=["models:read"],
            expires_at=datetime.now(UTC) + timedelta(minutes=1),
        )
        _expire(url, info.id)
        with pytest.raises(PermissionDenied, match="expired"):
            resolve_principal(organization="alpha", api_key=plaintext)
        audit = rows(url, "SELECT action FROM audit_logs WHERE resource_id = :id ORDER BY created_at", id=info.id)
        assert [a["action"] for a in audit] == ["api_key.create", "api_key.use.denied"]
        assert rows(url, "SELECT last_used_at FROM api_keys WHERE id = :id", id=info.id)[0]["last_used_at"] is None

    def test_revoked_key_is_refused(self, tenants_db, admin):
        plaintext, info = apikeys.create_key(admin, user_email="developer@alpha.example", name="x", scopes=["*"])
        apikeys.revoke_key(admin, key_prefix=info.key_prefix)
        with pytest.raises(PermissionDenied, match="revoked"):
            resolve_principal(organization="alpha", api_key=plaintext)

    def test_soft_deleted_key_is_refused(self, tenants_db, admin):
        url, _, _ = tenants_db
        plaintext, info = apikeys.create_key(admin, user_email="developer@alpha.example", name="x", scopes=["*"])
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.begin() as conn:
            conn.execute(text("UPDATE api_keys SET deleted_at = now() WHERE id = :id"), {"id": info.id})
        engine.dispose()
        with pytest.raises(PermissionDenied, match="deleted"):
            resolve_principal(organization="alpha", api_key=plaintext)

    def test_key_of_another_organization_is_refused(self, tenants_db, admin):
        plaintext, _ = apikeys.create_key(admin, user_email="developer@alpha.example", name="x", scopes=["*"])
        with pytest.raises(PermissionDenied, match="belongs to organization 'alpha', not 'beta'"):
            resolve_principal(organization="beta", api_key=plaintext)

    def test_only_admins_make_keys_for_others(self, tenants_db):
        url, _, _ = tenants_db
        developer = resolve_principal(organization="alpha", as_email="developer@alpha.example")
        with pytest.raises(PermissionDenied):
            apikeys.create_key(developer, user_email="viewer@alpha.example", name="x", scopes=["models:read"])
        assert rows(url, "SELECT count(*) AS n FROM audit_logs WHERE action = 'api_key.create.denied'")[0]["n"] == 1
        _, info = apikeys.create_key(
            developer, user_email="developer@alpha.example", name="mine", scopes=["models:read"]
        )
        assert info.user_email == "developer@alpha.example"

    def test_unknown_scope_is_bad_input(self, tenants_db, admin):
        with pytest.raises(InvalidInput, match="unknown scope"):
            apikeys.create_key(admin, user_email="developer@alpha.example", name="x", scopes=["root"])

    def test_revoking_an_unknown_prefix(self, tenants_db, admin):
        with pytest.raises(NotFound):
            apikeys.revoke_key(admin, key_prefix="mlk_nothere1")


def _expire(url: str, key_id) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = :id"), {"id": key_id}
        )
    engine.dispose()


class TestHostileUse:
    def test_a_key_cannot_be_created_already_expired(self, tenants_db, admin):
        url, _, _ = tenants_db
        with pytest.raises(InvalidInput, match="in the past"):
            apikeys.create_key(
                admin,
                user_email="developer@alpha.example",
                name="late",
                scopes=["models:read"],
                expires_at=datetime.now(UTC) - timedelta(seconds=1),
            )
        assert rows(url, "SELECT count(*) AS n FROM api_keys WHERE name = 'late'")[0]["n"] == 0

    def test_an_expired_key_is_listed_as_expired(self, tenants_db, admin):
        url, _, _ = tenants_db
        _, info = apikeys.create_key(
            admin,
            user_email="developer@alpha.example",
            name="soon",
            scopes=["models:read"],
            expires_at=datetime.now(UTC) + timedelta(minutes=1),
        )
        _expire(url, info.id)
        (listed,) = [k for k in apikeys.list_keys(admin) if k.id == info.id]
        assert listed.state == "expired"

    def test_a_key_revokes_only_what_its_scope_allows(self, tenants_db, admin):
        reader, _ = apikeys.create_key(admin, user_email="admin@alpha.example", name="read", scopes=["models:read"])
        manager, _ = apikeys.create_key(admin, user_email="admin@alpha.example", name="mgr", scopes=["api_keys:manage"])
        _, ci = apikeys.create_key(admin, user_email="admin@alpha.example", name="ci", scopes=["models:promote"])
        as_reader = resolve_principal(organization="alpha", api_key=reader)
        with pytest.raises(PermissionDenied, match="api_keys:manage"):
            apikeys.revoke_key(as_reader, key_prefix=ci.key_prefix)  # same user, but the key may only read
        assert next(k for k in apikeys.list_keys(admin) if k.id == ci.id).state == "active"
        apikeys.revoke_key(as_reader, key_prefix=reader[:12])  # a key may always switch itself off
        apikeys.revoke_key(resolve_principal(organization="alpha", api_key=manager), key_prefix=ci.key_prefix)
        assert next(k for k in apikeys.list_keys(admin) if k.id == ci.id).state == "revoked"

    def test_a_read_only_key_of_an_admin_lists_only_its_users_keys(self, tenants_db, admin):
        reader, _ = apikeys.create_key(admin, user_email="admin@alpha.example", name="read", scopes=["models:read"])
        apikeys.create_key(admin, user_email="developer@alpha.example", name="dev", scopes=["models:read"])
        listed = apikeys.list_keys(resolve_principal(organization="alpha", api_key=reader))
        assert {k.user_email for k in listed} == {"admin@alpha.example"}
        assert "developer@alpha.example" in {k.user_email for k in apikeys.list_keys(admin)}

    def test_a_whole_key_pasted_as_a_prefix_revokes_by_its_prefix_and_is_never_echoed(self, tenants_db, admin):
        plaintext, info = apikeys.create_key(admin, user_email="developer@alpha.example", name="x", scopes=["*"])
        assert apikeys.revoke_key(admin, key_prefix=plaintext).id == info.id
        unknown, _, _ = apikeys.generate_key()
        with pytest.raises(NotFound) as caught:
            apikeys.revoke_key(admin, key_prefix=unknown)
        assert unknown not in str(caught.value) and unknown[:12] in str(caught.value)

    def test_a_whole_key_pasted_as_the_user_is_never_echoed(self, tenants_db, admin):
        plaintext, _, _ = apikeys.generate_key()
        with pytest.raises(InvalidInput) as caught:
            apikeys.create_key(admin, user_email=plaintext, name="x", scopes=["*"])
        assert plaintext not in str(caught.value)

    def test_redact_keys_cuts_every_key_to_its_prefix(self):
        plaintext, prefix, _ = apikeys.generate_key()
        assert apikeys.redact_keys(f"unknown user '{plaintext}'") == f"unknown user '{prefix}…'"
        assert apikeys.redact_keys(f"prefix {prefix} stays") == f"prefix {prefix} stays"


class TestIdentity:
    def test_non_member_is_refused(self, tenants_db):
        with pytest.raises(PermissionDenied, match="not a member of organization 'beta'"):
            resolve_principal(organization="beta", as_email="admin@alpha.example")

    def test_unknown_organization(self, tenants_db):
        with pytest.raises(NotFound, match="unknown organization 'gamma'"):
            resolve_principal(organization="gamma", as_email="admin@alpha.example")

    def test_no_identity_is_bad_input(self, tenants_db):
        with pytest.raises(InvalidInput, match="no identity"):
            resolve_principal(organization="alpha")

    def test_suspended_organization_is_refused_on_demand(self, tenants_db):
        url, _, _ = tenants_db
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.begin() as conn:
            conn.execute(text("UPDATE organizations SET subscription_status = 'suspended' WHERE slug = 'alpha'"))
        engine.dispose()
        with pytest.raises(PermissionDenied, match="suspended"):
            resolve_principal(organization="alpha", as_email="admin@alpha.example")
        assert resolve_principal(organization="alpha", as_email="admin@alpha.example", on_demand=False)


def owner_exec(url: str, sql: str, **params) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


class TestKeysFollowTheirUser:
    """A key works only while its user is active, not deleted and still a member of the key's organization."""

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ("UPDATE users SET is_active = false WHERE email = 'developer@alpha.example'", "deactivated user"),
            ("UPDATE users SET deleted_at = now() WHERE email = 'developer@alpha.example'", "deleted user"),
            (
                "DELETE FROM organization_memberships WHERE user_id = "
                "(SELECT id FROM users WHERE email = 'developer@alpha.example')",
                "no longer in alpha",
            ),
        ],
    )
    def test_key_of_a_user_who_left_is_refused_and_audited(self, tenants_db, admin, change, reason):
        url, alpha, _ = tenants_db
        plaintext, info = apikeys.create_key(
            admin, user_email="developer@alpha.example", name="ci", scopes=["drift:run"]
        )
        assert resolve_principal(organization="alpha", api_key=plaintext).email == "developer@alpha.example"
        owner_exec(url, change)
        with pytest.raises(PermissionDenied, match=reason):
            resolve_principal(organization="alpha", api_key=plaintext)
        audit = rows(
            url, "SELECT action, details FROM audit_logs WHERE resource_id = :id ORDER BY created_at", id=info.id
        )
        assert audit[-1]["action"] == "api_key.use.denied" and reason in audit[-1]["details"]["reason"]

    def test_no_key_for_a_user_of_another_organization(self, tenants_db, admin):
        url, _, _ = tenants_db
        with pytest.raises(NotFound):  # beta's user is not even visible to alpha
            apikeys.create_key(admin, user_email="developer@beta.example", name="x", scopes=["drift:run"])
        assert rows(url, "SELECT count(*) AS n FROM api_keys WHERE name = 'x'")[0]["n"] == 0
