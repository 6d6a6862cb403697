"""Platform services every flow shares: settings, errors, access, audit, outbox, storage, secrets."""
