#!/usr/bin/env bash
# The steps a CI pipeline runs after training: register the trained model, then promote it through its gates.
# Both examples (github-actions.yml, gitlab-ci.yml) call this script, and tests/e2e/test_ci_example.py runs it
# against a local database, so what CI does is what the test proves.
#
#   examples/ci/steps.sh register   # upload ARTIFACT, record MODEL_VERSION in development (idempotent)
#   examples/ci/steps.sh promote    # move it to TARGET_STAGE if its gates pass
#   examples/ci/steps.sh all        # both
#
# Exit codes are mlops's, so the pipeline fails where it should: 1 a gate rejected the promotion (or the
# operation failed), 2 bad input, 3 the API key lacks a scope; 0 done.
#
# Environment:
#   MLOPS_API_KEY      the key CI acts with (a CI secret; `mlops keys create --scope models:register
#                      --scope models:promote:staging ...`); never a command-line argument
#   DATABASE_URL, MLOPS_MAINTENANCE_DATABASE_URL, MLOPS_ARTIFACT_URI (+ AWS_*)   where the control plane lives
#   MODEL_REF          ORG/PROJECT/MODEL, e.g. acme/fraud-detection/Credit Card Fraud Model
#   MODEL_VERSION      semantic version of this build, e.g. 1.4.0
#   ARTIFACT           the trained artifact (a file)
#   METRICS_FILE       JSON of its evaluation metrics, e.g. {"auc": 0.97, "precision": 0.81, "recall": 0.77}
#   TARGET_STAGE       staging (default) or production
#   MLOPS              the mlops command (default: mlops on PATH)
set -euo pipefail

MLOPS=${MLOPS:-mlops}
TARGET_STAGE=${TARGET_STAGE:-staging}
: "${MLOPS_API_KEY:?set MLOPS_API_KEY (a CI secret)}"
: "${MODEL_REF:?set MODEL_REF to ORG/PROJECT/MODEL}"
: "${MODEL_VERSION:?set MODEL_VERSION}"

register() {
    : "${ARTIFACT:?set ARTIFACT to the trained model file}"
    : "${METRICS_FILE:?set METRICS_FILE to the evaluation metrics (JSON)}"
    "$MLOPS" register "$MODEL_REF" "$MODEL_VERSION" --artifact "$ARTIFACT" --metrics "$METRICS_FILE" \
        --description "${DESCRIPTION:-built by CI}"
}

promote() {
    "$MLOPS" promote "$MODEL_REF" "$MODEL_VERSION" --to "$TARGET_STAGE" --reason "${REASON:-CI pipeline}"
}

case "${1:-}" in
    register) register ;;
    promote) promote ;;
    all) register && promote ;;
    *) echo "usage: $0 register|promote|all" >&2; exit 2 ;;
esac
