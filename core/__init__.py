"""The ground floor: errors, settings and shared types. Imports nothing of the project."""
