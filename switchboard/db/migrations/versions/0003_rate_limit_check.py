"""channel rate limits are positive real numbers; media downloads are claimed with a lease

- ``channels.rate_limit_per_second``: double precision (0.5 = one send every 2 s), CHECK > 0
  (a limit of 0 used to hang the outbox, issue 17).
- ``attachments.download_claimed_until``: the media worker's lease (issue 10 §4): a download is
  claimed in a short transaction and done outside any; a crashed worker's lease expires.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_rate_limit_check"
down_revision = "0002_signin_attempts"


def upgrade() -> None:
    op.execute("update channels set rate_limit_per_second = 1 where rate_limit_per_second <= 0")
    op.alter_column("channels", "rate_limit_per_second", type_=sa.Double(), existing_type=sa.Integer(),
                    existing_nullable=False, existing_server_default="80",
                    postgresql_using="rate_limit_per_second::double precision")
    op.create_check_constraint(op.f("ck_channels_rate_limit_positive"), "channels", "rate_limit_per_second > 0")
    op.add_column("attachments", sa.Column("download_claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("attachments", "download_claimed_until")
    op.drop_constraint(op.f("ck_channels_rate_limit_positive"), "channels", type_="check")
    op.alter_column("channels", "rate_limit_per_second", type_=sa.Integer(), existing_type=sa.Double(),
                    existing_nullable=False, existing_server_default="80",
                    postgresql_using="ceil(rate_limit_per_second)::integer")
