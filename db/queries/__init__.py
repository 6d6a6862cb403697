"""Query functions: keyword-only `session`, never commit."""
