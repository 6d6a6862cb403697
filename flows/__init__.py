"""Prefect flows, one module per flow: orchestration only."""
