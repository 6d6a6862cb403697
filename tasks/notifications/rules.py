"""Notification dispatch rules (pure): the conditions vocabulary, matching events to rules, the alert life cycle,
retries with backoff. No I/O: `tasks.notifications.service` feeds these plain data and writes what they decide.

Conditions (`notification_rules.conditions`, every key optional, documented in the README):

| key | value | an event matches when |
|---|---|---|
| `min_severity` | info, low, medium, high, critical | its severity is at least this |
| `alert_types` | list of alert types | its alert's type (or payload `alert_type`) is listed |
| `environments` | list of development, staging, production | its deployment's environment is listed |
| `stages` | list of development, staging, production, archived | its payload's `to_stage` (or `stage`) is listed |
| `statuses` | list of strings | its payload's `status` (an alert's: open, acknowledged, resolved) is listed |
| `event_types` | list of event types, `*` wildcards | its type matches one (`alert.*`, `model_version.promoted`) |
| `repeat_interval` | seconds or "30s", "15m", "4h", "1d" | (alerts) re-notified no more often than this; default 4 h |
| `group_wait` | same | one deployment's events within it go out as one message per channel; default 30 s |
"""

from __future__ import annotations

import fnmatch
import random
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from core.errors import InvalidInput
from core.vocabulary import AlertType, Environment, Severity, Stage, values

SEVERITY_RANK = {severity.value: severity.rank for severity in Severity}
LISTED = {"alert_types": values(AlertType), "environments": values(Environment), "stages": values(Stage)}
LIST_KEYS = ("alert_types", "environments", "stages", "statuses", "event_types")
TIMING_KEYS = ("repeat_interval", "group_wait")
CONDITION_KEYS = ("min_severity", *LIST_KEYS, *TIMING_KEYS)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)
DEFAULT_GROUP_WAIT = timedelta(seconds=30)
MAX_DURATION = timedelta(days=30)
DEAD_LETTER_EVENT = "notification.dead"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Conditions:
    min_severity: str | None = None
    alert_types: frozenset[str] | None = None
    environments: frozenset[str] | None = None
    stages: frozenset[str] | None = None
    statuses: frozenset[str] | None = None
    event_types: tuple[str, ...] | None = None
    repeat_interval: timedelta | None = None
    group_wait: timedelta | None = None


def parse_duration(value: Any, where: str) -> timedelta:
    """Seconds (a number) or "<n>s|m|h|d", from 0 to 30 days; InvalidInput otherwise."""
    if isinstance(value, bool):
        raise InvalidInput(f"{where} must be seconds or a duration like 30s, 15m, 4h, 1d, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise InvalidInput(f"{where} must be seconds or a duration like 30s, 15m, 4h, 1d, got {value!r}")
    if not 0 <= seconds <= MAX_DURATION.total_seconds():
        raise InvalidInput(f"{where} must be between 0 and 30 days, got {value!r}")
    return timedelta(seconds=seconds)


def parse_conditions(raw: Any) -> Conditions:
    """A rule's conditions, validated; InvalidInput names the key and what it accepts."""
    if raw is None:
        return Conditions()
    if not isinstance(raw, Mapping):
        raise InvalidInput("conditions must be a JSON object")
    unknown = sorted(set(raw) - set(CONDITION_KEYS))
    if unknown:
        raise InvalidInput(f"conditions: unknown key(s) {', '.join(unknown)}; known: {', '.join(CONDITION_KEYS)}")
    values: dict[str, Any] = {}
    if "min_severity" in raw:
        if raw["min_severity"] not in SEVERITY_RANK:
            raise InvalidInput(f"conditions.min_severity must be one of {', '.join(SEVERITY_RANK)}")
        values["min_severity"] = raw["min_severity"]
    allowed: dict[str, tuple[str, ...]] = LISTED
    for key in LIST_KEYS:
        if key not in raw:
            continue
        items = raw[key]
        if not isinstance(items, list) or not items or not all(isinstance(i, str) and 0 < len(i) <= 100 for i in items):
            raise InvalidInput(f"conditions.{key} must be a non-empty list of names")
        bad = sorted(set(items) - set(allowed[key])) if key in allowed else []
        if bad:
            raise InvalidInput(f"conditions.{key}: unknown {', '.join(bad)}; known: {', '.join(allowed[key])}")
        values[key] = tuple(items) if key == "event_types" else frozenset(items)
    for key in TIMING_KEYS:
        if key in raw:
            values[key] = parse_duration(raw[key], f"conditions.{key}")
    return Conditions(**values)


@dataclass(frozen=True)
class RuleRow:
    """An active rule of the organization, as stored (conditions not yet validated)."""

    id: uuid.UUID
    channel_id: uuid.UUID
    trigger_type: str
    project_id: uuid.UUID | None
    deployment_id: uuid.UUID | None
    conditions: Any


@dataclass(frozen=True)
class EventFacts:
    """An undispatched event with what matching needs from its deployment and alert."""

    id: uuid.UUID
    trigger_type: str
    event_type: str
    severity: str
    payload: Mapping[str, Any]
    created_at: datetime
    project_id: uuid.UUID | None = None
    deployment_id: uuid.UUID | None = None
    environment: str | None = None
    alert_id: uuid.UUID | None = None
    alert_type: str | None = None
    alert_status: str | None = None

    @property
    def stage(self) -> str | None:
        value = self.payload.get("to_stage") or self.payload.get("stage")
        return value if isinstance(value, str) else None

    @property
    def status(self) -> str | None:
        if self.alert_status:
            return self.alert_status
        value = self.payload.get("status")
        return value if isinstance(value, str) else None

    @property
    def is_resolution(self) -> bool:
        return self.event_type.endswith(".resolved")


def conditions_match(c: Conditions, e: EventFacts) -> bool:
    """Whether the event satisfies every condition the rule sets (an unset one always holds)."""
    if c.min_severity and SEVERITY_RANK.get(e.severity, 0) < SEVERITY_RANK[c.min_severity]:
        return False
    alert_type = e.alert_type or e.payload.get("alert_type")
    checks = (
        (c.alert_types, alert_type),
        (c.environments, e.environment),
        (c.stages, e.stage),
        (c.statuses, e.status),
    )
    if any(allowed is not None and value not in allowed for allowed, value in checks):
        return False
    return c.event_types is None or any(fnmatch.fnmatchcase(e.event_type, p) for p in c.event_types)


def in_scope(rule: RuleRow, e: EventFacts) -> bool:
    """Organization-wide (no project), project-wide (no deployment) or deployment-specific."""
    if rule.trigger_type != e.trigger_type:
        return False
    if rule.deployment_id is not None:
        return rule.deployment_id == e.deployment_id
    return rule.project_id is None or rule.project_id == e.project_id


@dataclass(frozen=True)
class Target:
    """One (event, channel) to deliver: the most specific matching rule, and the timings of all that matched."""

    event_id: uuid.UUID
    channel_id: uuid.UUID
    rule_id: uuid.UUID
    repeat_interval: timedelta
    group_wait: timedelta


@dataclass
class FanoutPlan:
    targets: list[Target] = field(default_factory=list)
    invalid_rules: dict[uuid.UUID, str] = field(default_factory=dict)  # rule id -> why it was skipped


def _specificity(rule: RuleRow) -> int:
    return 2 if rule.deployment_id else 1 if rule.project_id else 0


def plan_fanout(
    events: Sequence[EventFacts],
    rules: Iterable[RuleRow],
    *,
    default_repeat: timedelta = DEFAULT_REPEAT_INTERVAL,
    default_group_wait: timedelta = DEFAULT_GROUP_WAIT,
) -> FanoutPlan:
    """Which channels each event goes to: one target per (event, channel) however many rules match.

    A rule with malformed conditions is skipped (listed in `invalid_rules`) without affecting the others. A
    dead-letter event never goes to the channel that died.
    """
    plan = FanoutPlan()
    parsed: list[tuple[RuleRow, Conditions]] = []
    for rule in sorted(rules, key=lambda r: (-_specificity(r), str(r.id))):
        try:
            parsed.append((rule, parse_conditions(rule.conditions)))
        except InvalidInput as exc:
            plan.invalid_rules[rule.id] = str(exc)
    for e in events:
        chosen: dict[uuid.UUID, list[tuple[RuleRow, Conditions]]] = {}
        for rule, cond in parsed:
            if in_scope(rule, e) and conditions_match(cond, e):
                chosen.setdefault(rule.channel_id, []).append((rule, cond))
        dead_channel = str(e.payload.get("channel_id")) if e.event_type == DEAD_LETTER_EVENT else None
        for channel_id, matched in chosen.items():
            if str(channel_id) == dead_channel:
                continue
            repeats = [c.repeat_interval for _, c in matched if c.repeat_interval is not None]
            waits = [c.group_wait for _, c in matched if c.group_wait is not None]
            plan.targets.append(
                Target(
                    event_id=e.id,
                    channel_id=channel_id,
                    rule_id=matched[0][0].id,
                    repeat_interval=min(repeats, default=default_repeat),
                    group_wait=min(waits, default=default_group_wait),
                )
            )
    return plan


@dataclass(frozen=True)
class AlertState:
    last_notified_at: datetime | None = None
    resolution_notified_at: datetime | None = None


def alert_verdict(e: EventFacts, state: AlertState | None, repeat_interval: timedelta, now: datetime) -> str:
    """`send`, or why an alert event is not sent to a channel: `acknowledged`, `repeat_interval`, `resolved`.

    Events that are not about an alert are always sent. A resolution goes out once per channel; an
    acknowledged alert is not re-notified; an open one no more often than `repeat_interval`; an event about
    an alert already resolved (a late "opened") is not sent.
    """
    if e.alert_id is None or e.alert_status is None:
        return "send"
    state = state or AlertState()
    if e.is_resolution:
        return "resolved" if state.resolution_notified_at is not None else "send"
    if e.alert_status == "acknowledged":
        return "acknowledged"
    if e.alert_status == "resolved":
        return "resolved"
    if state.last_notified_at is not None and now - state.last_notified_at < repeat_interval:
        return "repeat_interval"
    return "send"


# --- delivery outcomes and retries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one send gave: an HTTP status (None when no answer), Retry-After, an error text without secrets."""

    status_code: int | None
    retry_after: str | None = None
    error: str | None = None
    kind: str | None = None  # `retry` / `permanent` when the code is not HTTP's (SMTP)


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    max_attempts: int = 8
    max_retry_after_seconds: float = 6 * 3600.0


def classify(attempt: Attempt) -> str:
    """`delivered` (2xx), `retry` (no answer, 408, 429, 5xx) or `permanent` (any other answer)."""
    if attempt.kind in ("retry", "permanent"):
        return attempt.kind
    code = attempt.status_code
    if code is None:
        return "retry"
    if 200 <= code < 300:
        return "delivered"
    if code in (408, 429) or code >= 500:
        return "retry"
    return "permanent"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def retry_delay(attempts: int, backoff: Backoff, *, retry_after: float | None = None, rng: random.Random) -> float:
    """Seconds before the next try after `attempts` tries: exponential with jitter (50-100 %), capped; a peer's
    Retry-After is honoured (up to `max_retry_after_seconds`) when it asks for longer."""
    exponential = min(backoff.cap_seconds, backoff.base_seconds * 2 ** max(0, attempts - 1))
    delay = exponential * (0.5 + rng.random() / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, backoff.max_retry_after_seconds))
    return delay


@dataclass(frozen=True)
class Decision:
    status: str  # delivered | failed | dead
    next_attempt_at: datetime | None
    last_error: str | None


def decide(attempt: Attempt, attempts: int, backoff: Backoff, now: datetime, rng: random.Random) -> Decision:
    """The delivery's next state after its `attempts`-th try."""
    verdict = classify(attempt)
    if verdict == "delivered":
        return Decision("delivered", None, None)
    error = (attempt.error or f"HTTP {attempt.status_code}")[:500]
    if verdict == "permanent":
        return Decision("dead", None, f"refused: {error}")
    if attempts >= backoff.max_attempts:
        return Decision("dead", None, f"gave up after {attempts} attempts: {error}")
    wait = retry_delay(attempts, backoff, retry_after=parse_retry_after(attempt.retry_after, now), rng=rng)
    return Decision("failed", now + timedelta(seconds=wait), error)
