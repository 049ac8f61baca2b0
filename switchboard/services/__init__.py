"""Domain services: plain functions ``(uow, actor, simple values)``.

Each one that reads or changes an organization's data takes the actor (flows and the CLI pass
``Actor.system(organization_id)``) and checks it itself through :mod:`switchboard.policy`; admin
changes are audited. Services never commit: the entrypoint (page, CLI command, workflow step,
importer, HTTP handler) commits once, so a service that raises leaves nothing written.
Worker-side functions that run for every organization by id (claiming the outbox, recording sends,
presence sweeps, media downloads, flow runs) take no actor and are never reachable by a person.
tests/integration/test_policy.py walks every function with an ``actor`` parameter.
"""

from __future__ import annotations
