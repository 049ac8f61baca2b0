"""A sender process for the fault tests: ``python -m tests.integration.send_worker DB_URL SECONDS LEASE``.

Runs :func:`switchboard.workflows.sending.drain_outbox` against the database until nothing was due
for a while, then prints its counters as one JSON line."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict

from sqlalchemy import create_engine

from switchboard.settings import get_settings
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.sending import drain_outbox


def main(url: str, seconds: float, lease: int, idle: float) -> None:
    logging.basicConfig(level=logging.WARNING)
    engine = create_engine(url, pool_pre_ping=True)
    connectors = ConnectorCache(engine, get_settings().secret_key_bytes())
    try:
        stats = drain_outbox(engine, connectors, seconds=seconds, idle_seconds=idle, lease_seconds=lease,
                             limit=20)
    finally:
        connectors.close()
        engine.dispose()
    print(json.dumps({k: v for k, v in asdict(stats).items() if k != "errors"} | {"errors": stats.errors[-5:]}),
          flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 3.0)
