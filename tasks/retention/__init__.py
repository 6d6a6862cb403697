"""Retention: the policy, cutoffs and reports (rules), the maintenance-role session and run lock, audit-log
archives, the other categories (data), one organization's run and restores (service); their Prefect tasks."""
