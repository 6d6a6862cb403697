"""The markdown a rollout, rollback or termination publishes as a Prefect artifact (pure)."""

from __future__ import annotations

from typing import Any


def change_markdown(summary: dict[str, Any]) -> str:
    """A short report: outcome, versions, and one table row per step."""
    lines = [
        f"# {summary.get('kind', 'change')} of {summary.get('version')} to {summary.get('deployment')}: "
        f"{summary.get('status')}",
        "",
        f"- previous version: {summary.get('previous_version') or '-'}",
        f"- actor: {summary.get('actor')}",
    ]
    if summary.get("error"):
        lines.append(f"- error: {summary['error']}")
    if summary.get("rolled_back_to"):
        lines.append(f"- rolled back to: {summary['rolled_back_to']} ({'ok' if summary.get('reverted') else 'FAILED'})")
    if summary.get("registry_restored"):
        lines.append(f"- registry restored: {'; '.join(summary['registry_restored'])}")
    if summary.get("driven") is False:
        lines.append("- registry-only deployment: no serving platform was driven")
    steps = summary.get("steps") or []
    if steps:
        lines += ["", "| step | percent | verdict | seconds | detail |", "|---|---|---|---|---|"]
        for n, step in enumerate(steps, 1):
            verdict = "ok" if step["ok"] else "FAILED"
            lines.append(f"| {n} | {step['percent']} | {verdict} | {step['seconds']:.2f} | {step['detail']} |")
    return "\n".join(lines) + "\n"
