"""The promotion decision as a person reads it: the markdown artifact of a promote-model run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def promotion_markdown(
    *,
    model: str,
    version: str,
    from_stage: str,
    to_stage: str,
    status: str,
    gates: Sequence[Mapping[str, Any]],
    forced: bool = False,
    reason: str | None = None,
    archived: Sequence[str] = (),
) -> str:
    """The promotion decision as a markdown document (the flow run's artifact)."""
    verdict = {
        "promoted": "✅ promoted",
        "demoted": "↩️ demoted",
        "archived": "🗄️ archived",
        "noop": "no change",
        "dry_run": "dry run (nothing written)",
        "rejected": "❌ rejected",
    }.get(status, status)
    lines = [
        f"# {model} {version}: {from_stage} → {to_stage}",
        "",
        f"**Decision:** {verdict}" + (" — **forced past the gates**" if forced else ""),
    ]
    if reason:
        lines.append(f"**Reason:** {reason}")
    if archived:
        lines.append(f"**Archived:** {', '.join(archived)} (previous production)")
    lines += ["", "| gate | verdict | detail |", "|---|---|---|"]
    for gate in gates:
        mark = "pass" if gate["passed"] else "FAIL"
        detail = str(gate["detail"]).replace("|", "\\|")
        lines.append(f"| {gate['gate']} | {mark} | {detail} |")
    if not gates:
        lines.append("| (none apply) | | |")
    return "\n".join(lines) + "\n"
