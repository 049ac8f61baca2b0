"""SMS through Twilio and email channels (issue 12): providers ``twilio`` and ``email``

- ``channels.provider`` and ``contacts.provider`` CHECK constraints accept the two new providers.
"""

from __future__ import annotations

from alembic import op

revision = "0011_sms_email"
down_revision = "0005_send_fencing"

_OLD = ("telegram", "whatsapp", "messenger", "instagram", "sandbox")
_NEW = (*_OLD, "twilio", "email")


def _provider_check(providers: tuple[str, ...]) -> None:
    condition = f"provider in ({', '.join(repr(p) for p in providers)})"
    for table in ("channels", "contacts"):
        op.drop_constraint(op.f(f"ck_{table}_provider"), table, type_="check")
        op.create_check_constraint(op.f(f"ck_{table}_provider"), table, condition)


def upgrade() -> None:
    _provider_check(_NEW)


def downgrade() -> None:
    _provider_check(_OLD)
