"""Database layer: declarative models, sessions and the embedded PostgreSQL default."""
