"""Rollout, rollback and terminate of a deployment: serving rules, planning, driving the platform, the state
changes and their report; their Prefect tasks."""
