"""The ground floor: errors, settings, vocabulary and validation. Imports nothing of the project."""
