"""Child process of the crash test: one dispatch run with a 1 s claim, killed by the test while it sends."""

from __future__ import annotations

import sys

from flows.notification_dispatch import dispatch_notifications
from tasks.notifications.service import DispatchSettings

if __name__ == "__main__":
    settings = DispatchSettings(claim_seconds=1.0, group_wait_seconds=0, base_seconds=0.05)
    dispatch_notifications.fn(organization=sys.argv[1], settings=settings)
