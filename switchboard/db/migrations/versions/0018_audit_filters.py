"""indexes for the audit log's filters (a category of actions, the person who acted)

The audit page lists the newest entries of one category (action prefixes such as ``permission.``) or
of one person. With only ``ix_audit_log_org`` PostgreSQL walked the organization's log backwards until
it found enough of them — the whole log for a rare category such as permission changes, whose entries
are few among years of sign-ins. ``ix_audit_log_org_action`` (``text_pattern_ops``, so ``LIKE
'permission.%'`` is a range of it) and ``ix_audit_log_org_actor`` find them directly.
"""

from __future__ import annotations

from alembic import op

revision = "0018_audit_filters"
down_revision = "0017_trouble_indexes"


def upgrade() -> None:
    op.execute("create index if not exists ix_audit_log_org_action "
               "on audit_log (organization_id, action text_pattern_ops, id)")
    op.execute("create index if not exists ix_audit_log_org_actor on audit_log (organization_id, actor_user_id, id)")


def downgrade() -> None:
    op.drop_index("ix_audit_log_org_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_org_action", table_name="audit_log")
