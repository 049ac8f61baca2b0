"""channel lifecycle (removed channels, connection tests, token expiry); runs attributable to an org (issue 14)

- ``channels.status`` may be ``removed`` (soft removal: history kept, webhooks answered 410).
- ``channels.checked_at`` / ``check_result``: the last "test connection" and what the platform said.
- ``channels.credentials_expire_at``: when the access token expires (Meta ``debug_token``).
- ``pipeline_runs.organization_id``: the organization a run concerns (NULL: installation-wide), so an
  organization's admins see their own runs and only the status of installation-wide ones.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_channel_lifecycle"
down_revision = "0004_message_templates"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_channels_status"), "channels", type_="check")
    op.create_check_constraint(op.f("ck_channels_status"), "channels",
                               "status in ('active', 'paused', 'error', 'removed')")
    op.add_column("channels", sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("channels", sa.Column("check_result", sa.Text(), nullable=True))
    op.add_column("channels", sa.Column("credentials_expire_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("pipeline_runs", sa.Column("organization_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(op.f("fk_pipeline_runs_organization_id_organizations"), "pipeline_runs",
                          "organizations", ["organization_id"], ["id"], ondelete="CASCADE")
    op.create_index("ix_pipeline_runs_org", "pipeline_runs", ["organization_id", sa.text("id desc")], unique=False)


def downgrade() -> None:
    op.drop_index("ix_pipeline_runs_org", table_name="pipeline_runs")
    op.drop_constraint(op.f("fk_pipeline_runs_organization_id_organizations"), "pipeline_runs", type_="foreignkey")
    op.drop_column("pipeline_runs", "organization_id")
    op.drop_column("channels", "credentials_expire_at")
    op.drop_column("channels", "check_result")
    op.drop_column("channels", "checked_at")
    op.execute("update channels set status = 'paused' where status = 'removed'")
    op.drop_constraint(op.f("ck_channels_status"), "channels", type_="check")
    op.create_check_constraint(op.f("ck_channels_status"), "channels", "status in ('active', 'paused', 'error')")
