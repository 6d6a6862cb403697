"""Roll 1.1.0 out to alpha's production deployment and SIGKILL this process right after the platform accepted
the second step (for the crash tests).

Usage: python -m tests.flows.rollout_crash_child
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    from flows.rollout import rollout_deployment
    from services.serving import HttpBackend

    real_apply = HttpBackend.apply
    calls = []

    def apply(self, deployment, traffic, *, timeout):
        real_apply(self, deployment, traffic, timeout=timeout)
        calls.append(traffic)
        if len(calls) == 2:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    HttpBackend.apply = apply
    rollout_deployment.fn(
        organization="alpha",
        project="fraud",
        deployment="fraud-api-production",
        environment="production",
        version="1.1.0",
        actor="admin@alpha.example",
    )
    raise SystemExit("the run finished without reaching its kill point")


if __name__ == "__main__":
    main()
