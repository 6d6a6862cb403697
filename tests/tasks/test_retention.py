"""Pure retention rules: the policy and its overrides, cutoffs, months, keys, id checksums and UUID codecs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from core.errors import InvalidInput
from tasks.retention.archives import ids_checksum, ids_literal, uuid_arrow_to_text, uuid_bytes, uuid_text_to_arrow
from tasks.retention.rules import (
    DEFAULT_POLICY,
    CategoryReport,
    OrgReport,
    archive_key,
    cutoffs,
    manifest_key,
    parse_month,
    parse_policy,
    table_rows,
)


class TestParsePolicy:
    def test_spec_defaults_without_overrides(self):
        assert parse_policy({}) == parse_policy(None) == DEFAULT_POLICY
        assert (DEFAULT_POLICY.audit_logs_days, DEFAULT_POLICY.monitoring_raw_days) == (730, 90)
        assert (DEFAULT_POLICY.monitoring_rollups_days, DEFAULT_POLICY.deleted_grace_days) == (365, 30)
        assert (DEFAULT_POLICY.model_artifacts_days, DEFAULT_POLICY.notifications_days) == (365, 90)

    def test_overrides_replace_only_what_they_name(self):
        policy = parse_policy({"retention": {"audit_logs_days": 2555, "deleted_grace_days": 7}})
        assert policy.audit_logs_days == 2555 and policy.deleted_grace_days == 7
        assert policy.monitoring_raw_days == 90

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ("2 years", "must be an object"),
            ({"audit_log_days": 800}, "not a retention setting"),
            ({"audit_logs_days": "730"}, "whole number of days"),
            ({"audit_logs_days": 730.5}, "whole number of days"),
            ({"audit_logs_days": True}, "whole number of days"),
            ({"audit_logs_days": 10}, "between 90 and"),
            ({"monitoring_raw_days": 400}, "cannot outlive its rollups"),
        ],
    )
    def test_a_bad_value_is_refused_with_its_name(self, overrides, message):
        with pytest.raises(InvalidInput, match=message):
            parse_policy({"retention": overrides})


class TestCutoffs:
    def test_raw_monitoring_cutoff_is_a_whole_hour(self):
        cut = cutoffs(DEFAULT_POLICY, datetime(2026, 11, 25, 3, 17, 42, tzinfo=UTC))
        assert cut.monitoring_raw == datetime(2026, 8, 27, 3, 0, tzinfo=UTC)
        assert cut.audit_logs == datetime(2024, 11, 25, 3, 17, 42, tzinfo=UTC)

    def test_naive_time_refused(self):
        with pytest.raises(InvalidInput):
            cutoffs(DEFAULT_POLICY, datetime(2026, 1, 1))


class TestMonthsAndKeys:
    def test_month_bounds(self):
        assert parse_month("2024-12") == (datetime(2024, 12, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))

    @pytest.mark.parametrize("text", ["2024-13", "2024-1", "24-01", "2024-01-01", ""])
    def test_bad_month(self, text):
        with pytest.raises(InvalidInput, match="YYYY-MM"):
            parse_month(text)

    def test_keys_are_deterministic(self):
        key = archive_key("audit_logs", "acme", "2024-09")
        assert key == "retention/audit_logs/acme/2024-09.parquet"
        assert manifest_key(key) == "retention/audit_logs/acme/2024-09.manifest.json"


class TestIds:
    def test_uuid_codec_round_trips_with_nulls(self):
        values = [str(uuid.uuid4()) for _ in range(100)] + [None]
        arrow = uuid_text_to_arrow(pa.array(values))
        assert arrow.null_count == 1
        assert uuid_arrow_to_text(arrow).to_pylist() == values
        assert [str(u) if u else None for u in arrow.to_pylist()] == values

    def test_malformed_uuid_refused(self):
        with pytest.raises(Exception, match="canonical UUID"):
            uuid_text_to_arrow(pa.array(["not-a-uuid"]))

    def test_checksum_ignores_order_and_sees_every_id(self):
        ids = [uuid.uuid4() for _ in range(50)]
        matrix = np.frombuffer(b"".join(u.bytes for u in ids), dtype=np.uint8).reshape(-1, 16)
        assert ids_checksum(matrix) == ids_checksum(matrix[::-1].copy())
        assert ids_checksum(matrix) != ids_checksum(matrix[1:])
        import hashlib

        assert ids_checksum(matrix) == hashlib.sha256(b"".join(u.bytes for u in sorted(ids))).hexdigest()

    def test_literal_names_each_id(self):
        ids = [uuid.uuid4() for _ in range(3)]
        matrix = uuid_bytes(uuid_text_to_arrow(pa.array([str(u) for u in ids])))
        assert ids_literal(matrix) == "{" + ",".join(u.hex for u in ids) + "}"


def test_table_rows_one_per_organization_and_category():
    ok = OrgReport("acme", "1", dry_run=True, categories=[CategoryReport("audit_logs", 3, archive_keys=["k"])])
    bad = OrgReport("beta", "2", dry_run=True, status="skipped", error="invalid retention policy")
    rows = table_rows([ok, bad])
    assert rows[0] == {
        "organization": "acme",
        "category": "audit_logs",
        "count": 3,
        "held": 0,
        "status": "dry-run",
        "detail": "k",
    }
    assert rows[1]["status"] == "skipped" and rows[1]["detail"] == "invalid retention policy"
