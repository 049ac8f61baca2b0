"""Application workflows: the orchestration the flows, the receiver and the CLI run.

Plain functions over an engine and connectors (no Prefect here): each opens its own units of work and
commits once per step. ``pipelines/`` wraps them in ``@flow``s with schedules.
"""
