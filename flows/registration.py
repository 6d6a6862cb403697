"""Flow `register-model-version`: upload what CI trained and record the version in `development`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from flows.runtime import call, control_flow, logger, publish_markdown, run_name
from services.auth import acting_principal
from tasks.registry.service import RegistrationRequest, stage_local_artifact
from tasks.registry.tasks import register_task
from tasks.shared.identity import authenticate


@control_flow(name="register-model-version", flow_run_name=run_name("register-{model}-{version}"))
def register_model_version(
    organization: Annotated[str, Field(description="Organization slug")],
    project: Annotated[str, Field(description="Project slug")],
    model: Annotated[str, Field(description="Model name (created if new)")],
    version: Annotated[str, Field(description="Semantic version, e.g. 1.3.0")],
    artifact: Annotated[
        str, Field(description="Artifact-store URI under models/<org>/ or uploads/<org>/ (never a worker's path)")
    ],
    metrics: Annotated[dict[str, Any] | None, Field(description="Performance metrics, e.g. {'auc': 0.97}")] = None,
    training_metrics: Annotated[dict[str, Any] | None, Field(description="Training metrics (loss, epochs)")] = None,
    model_schema: Annotated[dict[str, Any] | None, Field(description="Input/output schema")] = None,
    requirements: Annotated[str | None, Field(description="pip freeze of the training environment")] = None,
    description: Annotated[str | None, Field(description="What changed in this version")] = None,
    model_type: Annotated[str | None, Field(description="For a new model: classification, regression, ...")] = None,
    framework: Annotated[str | None, Field(description="For a new model: scikit-learn, xgboost, ...")] = None,
    task_type: Annotated[str | None, Field(description="For a new model: binary_classification, ...")] = None,
    actor: Annotated[str | None, Field(description="E-mail of the acting user when no MLOPS_API_KEY")] = None,
) -> dict[str, Any]:
    """Upload the artifact (size and sha256 recorded) and create the version; the same artifact again is a no-op."""
    principal = call(authenticate, organization, actor)
    request = RegistrationRequest(
        organization=organization,
        project=project,
        model=model,
        version=version,
        artifact=artifact,
        metrics=metrics or {},
        training_metrics=training_metrics or {},
        model_schema=model_schema or {},
        requirements=requirements,
        description=description,
        model_type=model_type,
        framework=framework,
        task_type=task_type,
    )
    outcome = call(register_task, principal, request)
    logger().info("%s %s: %s (%s, sha256 %s)", model, version, outcome.status, outcome.artifact_uri, outcome.sha256)
    publish_markdown(
        f"# {model} {version}: {outcome.status}\n\n| | |\n|---|---|\n| artifact | `{outcome.artifact_uri}` |\n"
        f"| size | {outcome.size_bytes} bytes |\n| sha256 | `{outcome.sha256}` |\n"
        f"| model created | {outcome.model_created} |\n",
        key=f"registration-{model}-{version}",
        description=f"Registration of {model} {version}",
    )
    return outcome.to_json()


def upload_local_artifact(path: str | Path, *, actor: str | None = None, **request: Any) -> str:
    """For the CLI on its user's machine: upload a local artifact for the registration `request` (the flow's
    parameters) and return the store URI to pass as the flow run's `artifact`. The flow itself never reads a
    local path, so a deployment run cannot register a file from the worker's disk."""
    principal = acting_principal(request["organization"], actor)
    registration = RegistrationRequest(
        **{k: v for k, v in request.items() if v is not None and k in RegistrationRequest.__dataclass_fields__},
        artifact=str(path),
    )
    return stage_local_artifact(principal, registration, Path(path).expanduser())
