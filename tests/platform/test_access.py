"""The permission table and the one function that decides (pure: no database)."""

from __future__ import annotations

import uuid

import pytest

from core.errors import InvalidInput, PermissionDenied
from services.access import KNOWN_SCOPES, RULES, Action, Principal, is_allowed, require, scope_covers, validate_scopes

ORG = uuid.uuid4()
PROJECT = uuid.uuid4()
OTHER_PROJECT = uuid.uuid4()


def user(org_role: str, project_role: str | None = None, scopes: set[str] | None = None) -> Principal:
    return Principal(
        organization_id=ORG,
        organization_slug="acme",
        user_id=uuid.uuid4(),
        email=f"{org_role}@acme.example",
        org_role=org_role,
        scopes=frozenset(scopes) if scopes is not None else None,
        project_roles={PROJECT: project_role} if project_role else {},
    )


class TestIsAllowed:
    @pytest.mark.parametrize("action", list(Action))
    def test_viewers_may_only_read(self, action):
        assert is_allowed(user("viewer"), action, PROJECT) is (action == Action.MODEL_READ)

    @pytest.mark.parametrize(
        ("action", "allowed"),
        [
            (Action.PROMOTE_STAGING, True),
            (Action.ROLLOUT_DEVELOPMENT, True),
            (Action.ROLLOUT_STAGING, True),
            (Action.PROMOTE_PRODUCTION, False),
            (Action.ROLLOUT_PRODUCTION, False),
            (Action.ROLLBACK, False),
            (Action.RETENTION_RUN, False),
            (Action.FORCE_PROMOTION, False),
        ],
    )
    def test_developers_work_below_production(self, action, allowed):
        assert is_allowed(user("developer"), action, PROJECT) is allowed

    def test_project_owner_may_promote_to_production_in_their_project_only(self):
        owner = user("viewer", project_role="owner")
        assert is_allowed(owner, Action.PROMOTE_PRODUCTION, PROJECT)
        assert not is_allowed(owner, Action.PROMOTE_PRODUCTION, OTHER_PROJECT)
        assert not is_allowed(owner, Action.FORCE_PROMOTION, PROJECT)

    def test_contributor_may_promote_to_staging(self):
        assert is_allowed(user("viewer", project_role="contributor"), Action.PROMOTE_STAGING, PROJECT)

    @pytest.mark.parametrize("action", list(Action))
    def test_admins_may_do_everything(self, action):
        assert is_allowed(user("admin"), action, PROJECT)

    def test_api_key_scopes_narrow_the_users_role(self):
        ci = user("admin", scopes={"models:promote:staging"})
        assert is_allowed(ci, Action.PROMOTE_STAGING, PROJECT)
        assert not is_allowed(ci, Action.PROMOTE_PRODUCTION, PROJECT)

    def test_api_key_never_exceeds_the_users_role(self):
        assert not is_allowed(user("developer", scopes={"*"}), Action.PROMOTE_PRODUCTION, PROJECT)


class TestScopes:
    @pytest.mark.parametrize(
        ("granted", "needed", "covers"),
        [
            ({"models:promote"}, "models:promote:production", True),
            ({"models"}, "models:promote:staging", True),
            ({"*"}, "retention:run", True),
            ({"models:promote:staging"}, "models:promote:production", False),
            ({"models:prom"}, "models:promote:staging", False),
        ],
    )
    def test_prefix_scopes_cover_narrower_ones(self, granted, needed, covers):
        assert scope_covers(frozenset(granted), needed) is covers

    def test_unknown_scopes_are_refused(self):
        with pytest.raises(InvalidInput, match="models:delete"):
            validate_scopes(["models:delete"])

    def test_every_rule_scope_is_known(self):
        assert {rule.scope for rule in RULES.values()} <= KNOWN_SCOPES


class TestRequire:
    def test_refusal_names_principal_role_and_action(self):
        with pytest.raises(PermissionDenied, match=r"viewer@acme.example \(organization role 'viewer'\) may not"):
            require(user("viewer"), Action.PROMOTE_STAGING, PROJECT, what="model 1.1.0")

    def test_refusal_for_a_missing_scope_names_the_scope(self):
        with pytest.raises(PermissionDenied, match="lacks scope 'models:promote:production'"):
            require(user("admin", scopes={"models:read"}), Action.PROMOTE_PRODUCTION, PROJECT)
