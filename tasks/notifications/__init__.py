"""Notifications: rule matching and the alert life cycle (rules), message bodies (messages), channels, what people
do with rules, deliveries and alerts (admin), dispatch (service); its Prefect tasks."""
