"""Database layer: declarative models, sessions, queries, the one translation of database errors, the embedded
PostgreSQL default."""
