"""Data drift: Evidently's tests on arrays (arrays), per-column and dataset verdicts (verdicts), the configuration
and windows (rules), reading datasets, the HTML report, the detection run (service); its Prefect tasks."""
