"""Prefect flows, one module per flow: orchestration only, declared with `flows.runtime.control_flow`."""
