"""Admin services: channels and organization settings check the policy themselves and are audited."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from switchboard.db.schema import AuditLog, Channel
from switchboard.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from switchboard.services.channels import channel_credentials, create_channel, set_channel_credentials
from switchboard.services.organizations import (
    create_organization,
    get_organization,
    organization_id_by_name,
    update_settings,
)
from switchboard.types import Actor

from .conftest import KEY, World


def _audit(w: World, action: str) -> list[tuple[int | None, str | None, dict[str, object]]]:
    with w.uow() as u:
        return [(r.actor_user_id, r.target, r.details) for r in u.session.execute(
            select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).scalars()]


@pytest.mark.parametrize("rate", [0, -1, 0.0])
def test_a_channel_that_could_never_send_is_refused(world: World, rate: float) -> None:
    with world.uow() as u, pytest.raises(InvalidInput, match="positive number of messages per second"):
        create_channel(u, world.admin, key="slow", provider="sandbox", name="Slow", secret_key=KEY,
                       rate_limit_per_second=rate)
    with world.uow() as u:
        assert u.session.execute(select(func.count()).where(Channel.key == "slow")).scalar_one() == 0


def test_channel_changes_are_audited_without_their_secrets(world: World) -> None:
    with world.uow() as u:
        ch = create_channel(u, world.admin, key="ig", provider="instagram", name="IG", secret_key=KEY,
                            credentials={"page_access_token": "tok-SECRET"}, rate_limit_per_second=5)
    with world.uow() as u:
        set_channel_credentials(u, world.admin, ch.id, KEY, {"page_access_token": "new-SECRET", "app_secret": "x"})
    with world.uow() as u:
        assert channel_credentials(u, world.admin, ch.id, KEY)["page_access_token"] == "new-SECRET"
    with world.uow() as u:  # flows read as the system actor: not an audited act of a person
        channel_credentials(u, Actor.system(world.org), ch.id, KEY)
    *fixtures, created = _audit(world, "channel.created")  # the world's channels came first
    assert [target for _, target, _ in fixtures] == ["wa-main", "tg", "wa-main"]
    changed, = _audit(world, "channel.credentials_changed")
    read, = _audit(world, "channel.credentials_read")
    assert created[:2] == (world.admin.user_id, "ig") and created[2]["credentials"] == ["page_access_token"]
    assert changed[2]["credentials"] == ["app_secret", "page_access_token"]
    assert read[:2] == (world.admin.user_id, "ig")
    assert "SECRET" not in repr([created, changed, read])


def test_channel_services_refuse_managers_and_other_organizations(world: World) -> None:
    with world.uow() as u, pytest.raises(PermissionDenied, match="only admins may manage channels"):
        channel_credentials(u, world.manager, world.wa, KEY)
    with world.uow() as u, pytest.raises(NotFound):
        set_channel_credentials(u, Actor.system(world.org2), world.wa, KEY, {"a": "b"})


def test_organizations_are_created_explicitly_and_looked_up_by_name(world: World) -> None:
    with world.uow() as u:
        assert organization_id_by_name(u, " Acme ") == world.org
    with world.uow() as u, pytest.raises(Conflict, match="'Acme' already exists"):
        create_organization(u, "Acme")
    with world.uow() as u, pytest.raises(NotFound, match="no organization named 'Acmee'.*'Acme', 'Other'"):
        organization_id_by_name(u, "Acmee")  # a typo no longer creates an organization


def test_settings_are_for_admins_and_audited_with_before_and_after(world: World) -> None:
    with world.uow() as u, pytest.raises(PermissionDenied, match="only admins"):
        update_settings(u, world.manager, auto_assign=True)
    with world.uow() as u:
        assert get_organization(u, world.a1).timezone == "Europe/Berlin"  # every member may read it
        update_settings(u, Actor.system(world.org), timezone="UTC", auto_assign=False)  # auto_assign unchanged
    (who, target, details), = _audit(world, "organization.updated")
    assert (who, target, details) == (None, "Acme", {"timezone": ["Europe/Berlin", "UTC"]})
