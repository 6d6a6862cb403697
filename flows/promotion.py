"""Flow `promote-model`: gated, audited stage transitions that CI can trigger, then the hand-off to rollout."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from core.errors import GateRejected, MlopsError, RolloutFailed
from core.vocabulary import Stage
from flows.rollout import rollback_deployment, rollout_deployment
from flows.runtime import call, control_flow, logger, publish_markdown, run_name, run_subflow
from services.access import Principal
from tasks.promotion.report import promotion_markdown
from tasks.promotion.service import PromotionOutcome, PromotionRequest
from tasks.promotion.tasks import promote_task
from tasks.registry.rules import validate_stage
from tasks.registry.tasks import revert_promotion_task
from tasks.shared.identity import authenticate


@control_flow(name="promote-model", flow_run_name=run_name("promote-{model}-{version}-to-{to_stage}"))
def promote_model(
    organization: Annotated[str, Field(description="Organization slug, e.g. acme")],
    project: Annotated[str, Field(description="Project slug, e.g. fraud-detection")],
    model: Annotated[str, Field(description="Model name, e.g. Credit Card Fraud Model")],
    version: Annotated[str, Field(description="Version to move, e.g. 1.1.0")],
    to_stage: Annotated[Stage, BeforeValidator(validate_stage), Field(description="Target stage")] = Stage.STAGING,
    reason: Annotated[str | None, Field(description="Why (required with force)")] = None,
    dry_run: Annotated[bool, Field(description="Evaluate the gates and report; write nothing")] = False,
    force: Annotated[bool, Field(description="Skip failing gates (organization admins, with a reason)")] = False,
    rollout: Annotated[bool, Field(description="Roll a new production version out to its deployments")] = True,
    actor: Annotated[
        str | None, Field(description="E-mail of the acting user when the worker has no MLOPS_API_KEY")
    ] = None,
) -> dict[str, Any]:
    """Move a model version to a stage if its gates pass: one transaction changes the stage, archives the
    previous production version, records the transition, the audit row and the `model_update` event."""
    log = logger()
    principal = call(authenticate, organization, actor)
    request = PromotionRequest(
        organization=organization,
        project=project,
        model=model,
        version=version,
        to_stage=to_stage,
        reason=reason,
        dry_run=dry_run,
        force=force,
    )
    try:
        outcome: PromotionOutcome = call(promote_task, principal, request)
    except GateRejected as rejected:
        publish_markdown(
            promotion_markdown(
                model=model,
                version=version,
                from_stage=rejected.from_stage or "?",
                to_stage=to_stage,
                status="rejected",
                gates=rejected.gates,
                reason=reason,
            ),
            key=f"promotion-{model}-{version}",
            description=f"Promotion of {model} {version} to {to_stage}: rejected",
        )
        raise  # the run fails, so `prefect deployment run --watch` exits non-zero
    publish_markdown(
        promotion_markdown(
            model=outcome.model,
            version=outcome.version,
            from_stage=outcome.from_stage,
            to_stage=outcome.to_stage,
            status=outcome.status,
            gates=outcome.gates,
            forced=outcome.forced,
            reason=reason,
            archived=outcome.archived_versions,
        ),
        key=f"promotion-{model}-{version}",
        description=f"Promotion of {model} {version} to {to_stage}: {outcome.status}",
    )
    log.info("%s %s: %s → %s (%s)", model, version, outcome.from_stage, outcome.to_stage, outcome.status)
    result = outcome.to_json()
    result["rollout"] = hand_off_to_rollout(outcome, principal, enabled=rollout)
    return result


def hand_off_to_rollout(outcome: PromotionOutcome, principal: Principal, *, enabled: bool) -> str:
    """Roll a new production version out to the model's production deployments (a subflow each), in order.

    A rollout that fails reverts its deployment and the registry (the same transaction) and fails this flow;
    one that cannot start (bad input, refused, busy) reverts the promotion too, so the registry never names a
    production version that no deployment could take."""
    if outcome.status != "promoted" or outcome.to_stage != "production":
        return "not applicable"
    if not enabled:
        return "skipped (rollout disabled)"
    promotion = {
        "from_stage": outcome.from_stage,
        "previous_production_version_ids": [str(v) for v in outcome.archived_version_ids],
        "transition_id": str(outcome.transition_id),
    }
    what = f"promotion of {outcome.model} {outcome.version} to production reverted:"
    done: list[tuple[str, str]] = []  # (deployment id, label) already rolled out
    for deployment_id in outcome.production_deployment_ids:
        params = dict(
            organization=principal.organization_slug,
            actor=principal.email,
            deployment_id=str(deployment_id),
            model_version_id=str(outcome.model_version_id),
            promotion=promotion,
        )
        try:
            result = run_subflow(rollout_deployment, **params)
        except RolloutFailed as failed:
            undone = _undo(done, principal, f"{what} its rollout to another deployment failed")
            raise RolloutFailed(f"{what} {failed}{undone}", failed.summary) from None
        except MlopsError as refused:
            call(revert_promotion_task, principal, outcome.model_version_id, promotion, str(refused))
            undone = _undo(done, principal, f"{what} a rollout could not start")
            raise RolloutFailed(f"{what} its rollout could not start: {refused}{undone}") from None
        done.append((str(deployment_id), result.get("deployment", str(deployment_id))))
    if not done:
        return "no production deployment serves this model: registry change only"
    return f"rolled out to {len(done)} deployment(s): {', '.join(label for _, label in done)}"


def _undo(done: list[tuple[str, str]], principal: Principal, reason: str) -> str:
    """Roll back the deployments this promotion already moved, so none serves a version the registry no longer
    holds in production; what happened, as a sentence tail."""
    notes = []
    for deployment_id, label in done:
        try:
            run_subflow(
                rollback_deployment,
                organization=principal.organization_slug,
                actor=principal.email,
                deployment_id=deployment_id,
                reason=reason,
            )
            notes.append(f"{label} rolled back")
        except MlopsError as exc:
            notes.append(f"{label} NOT rolled back ({exc})")
    return f"; {', '.join(notes)}" if notes else ""
