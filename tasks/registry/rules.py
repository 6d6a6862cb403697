"""Registry rules (pure): version strings, model references, the stage life cycle, artifact object keys."""

from __future__ import annotations

import re
from typing import Literal

from core.errors import InvalidInput
from core.vocabulary import Stage, values

STAGES = values(Stage)
TransitionKind = Literal["promotion", "demotion", "archive", "noop"]

# SemVer 2.0.0: MAJOR.MINOR.PATCH[-prerelease][+build], no leading zeros in numeric identifiers.
_NUM = r"0|[1-9]\d*"
_PRE = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
SEMVER = re.compile(
    rf"^(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE}(?:\.{_PRE})*))?(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


def validate_version(text: str) -> str:
    """The version string if it is SemVer (1.2.0, 2.0.0-rc.1); InvalidInput otherwise."""
    if len(text) > 50 or not SEMVER.match(text):
        raise InvalidInput(f"malformed version '{text}': expected semantic versioning such as 1.2.0 or 2.0.0-rc.1")
    return text


def parse_model_ref(ref: str) -> tuple[str, str, str]:
    """`ORG/PROJECT/MODEL` → (organization slug, project slug, model name); the name may contain spaces."""
    parts = ref.split("/", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise InvalidInput(f"'{ref}' is not ORG/PROJECT/MODEL (e.g. acme/fraud-detection/Credit Card Fraud Model)")
    return parts[0].strip(), parts[1].strip(), parts[2].strip()


def validate_stage(stage: object) -> Stage:
    """The stage named by `stage`; InvalidInput naming the stages otherwise."""
    if stage not in STAGES:
        raise InvalidInput(f"unknown stage '{str(stage)[:40]}'; expected one of {', '.join(STAGES)}")
    return Stage(stage)


def classify_transition(current: str, target: str, *, allow_skip: bool = False) -> TransitionKind:
    """What moving a version from `current` to `target` is; InvalidInput for an illegal transition.

    development → staging → production; any → archived; production → staging is a demotion;
    development → production only where the project allows skipping staging; archived is final.
    """
    validate_stage(target)
    if current == target:
        return "noop"
    if current == "archived":
        raise InvalidInput("illegal transition archived → " + target + ": archived versions cannot be promoted")
    if target == "archived":
        return "archive"
    if (current, target) in (("development", "staging"), ("staging", "production")):
        return "promotion"
    if (current, target) == ("production", "staging"):
        return "demotion"
    if (current, target) == ("development", "production"):
        if allow_skip:
            return "promotion"
        raise InvalidInput(
            "illegal transition development → production: promote to staging first "
            "(or allow it with the project setting promotion.allow_skip_staging)"
        )
    raise InvalidInput(f"illegal transition {current} → {target}")


# --- where a version's artifact lives: content-addressed object keys ---------------------------------------


def slugify(name: str) -> str:
    """`Credit Card Fraud Model` → `credit-card-fraud-model` (object keys)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


def artifact_key(org: str, project: str, model_name: str, version: str, sha256: str, filename: str) -> str:
    """Content-addressed key of a version's artifact: concurrent registrations never overwrite each other."""
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename) or "artifact"
    return f"models/{org}/{project}/{slugify(model_name)}/{version}/{sha256[:16]}/{safe_name}"
