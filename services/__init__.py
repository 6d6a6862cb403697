"""What every domain shares: access, audit, outbox, API keys, secrets, members, senders, serving, storage, netguard."""
