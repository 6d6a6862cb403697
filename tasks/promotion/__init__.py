"""Promotion: the policy and its gates (rules), the gated stage move with its audit and event (service), the
decision as a person reads it (report); its Prefect task."""
