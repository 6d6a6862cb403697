"""Services that own transactions: access, audit, outbox, API keys, secrets, members, channels, storage, senders."""
