"""Domain logic: pure functions first, thin Prefect task wrappers at the bottom of each module."""
