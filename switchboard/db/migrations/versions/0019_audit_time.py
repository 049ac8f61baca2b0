"""an index for the audit log's date ("up to") filter

The audit page can show what happened up to a day ("up to 3 March"). The log is read newest id first;
without an index on the time PostgreSQL walked every newer entry, filtering them out, to get there.
With ``ix_audit_log_org_time`` it reads a day far back from the entries before it (and still walks
back from the newest when the day is recent: the planner picks the cheaper way).
"""

from __future__ import annotations

from alembic import op

revision = "0019_audit_time"
down_revision = "0018_audit_filters"


def upgrade() -> None:
    op.execute("create index if not exists ix_audit_log_org_time on audit_log (organization_id, occurred_at)")


def downgrade() -> None:
    op.drop_index("ix_audit_log_org_time", table_name="audit_log")
