"""Metric aggregation: alert rules and bucket arithmetic (rules), roll-ups, alerts and run summaries per
organization (service); their Prefect tasks."""
