"""The domain layer: one package per domain (registry, promotion, rollout, drift, metrics, retention,
notifications), each with pure rules, transactional services and thin Prefect tasks; `tasks.shared` holds what
their tasks share."""
