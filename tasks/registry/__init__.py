"""The model registry: versions, stages and their history (rules); registering a version, every stage move,
restoring the registry after a failed rollout (service); their Prefect tasks."""
