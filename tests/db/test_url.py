"""Which URL each role uses: login (DATABASE_URL), maintenance, and the owner for migrations."""

from __future__ import annotations

import pytest

from db.url import database_url, maintenance_database_url, migration_database_url

LOGIN = "postgresql://mlops_login:pw@db.internal:5432/mlops"


class TestRoleUrls:
    def test_migration_url_defaults_to_database_url_with_a_warning(self, monkeypatch):
        monkeypatch.setenv("DATABASE_URL", LOGIN)
        monkeypatch.delenv("MLOPS_MIGRATION_DATABASE_URL", raising=False)
        with pytest.warns(UserWarning, match="MLOPS_MIGRATION_DATABASE_URL is not set"):
            assert migration_database_url() == "postgresql+psycopg://mlops_login:pw@db.internal:5432/mlops"

    def test_each_role_has_its_own_url(self, monkeypatch):
        monkeypatch.setenv("DATABASE_URL", LOGIN)
        monkeypatch.setenv("MLOPS_MIGRATION_DATABASE_URL", "postgresql://owner:o@db.internal/mlops")
        monkeypatch.delenv("MLOPS_MAINTENANCE_DATABASE_URL", raising=False)
        assert database_url().startswith("postgresql+psycopg://mlops_login:pw@")
        assert migration_database_url() == "postgresql+psycopg://owner:o@db.internal/mlops"
        # the maintenance role defaults to the same server as mlops_maintenance, never with the login's password
        assert maintenance_database_url() == "postgresql+psycopg://mlops_maintenance@db.internal:5432/mlops"
        monkeypatch.setenv("MLOPS_MAINTENANCE_DATABASE_URL", "postgresql://mlops_maintenance:m@other/mlops")
        assert maintenance_database_url() == "postgresql+psycopg://mlops_maintenance:m@other/mlops"
