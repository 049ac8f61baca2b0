"""Roles and per-channel permissions, checked by every service that acts for a person.

Roles: ``admin`` (everything, including users and channels), ``manager`` (every channel of the
organization, assignment, permissions), ``agent`` (only channels granted in ``channel_permissions``:
``can_view`` to read, ``can_send`` to reply).
"""

from __future__ import annotations

from sqlalchemy import select

from switchboard.db.schema import Channel, ChannelPermission
from switchboard.errors import PermissionDenied
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


def require_admin(actor: Actor) -> None:
    if actor.role != "admin":
        raise PermissionDenied("only admins may do this (your role is " + actor.role + ")")


def require_manager(actor: Actor) -> None:
    if actor.role not in ("admin", "manager"):
        raise PermissionDenied("only admins and managers may do this (your role is " + actor.role + ")")


def require_same_organization(actor: Actor, organization_id: int) -> None:
    if actor.organization_id != organization_id:
        raise PermissionDenied("that belongs to another organization")


def visible_channel_ids(uow: UnitOfWork, actor: Actor) -> list[int]:
    """Channels the actor may read: all of the organization for admins/managers, granted ones for agents."""
    stmt = select(Channel.id).where(Channel.organization_id == actor.organization_id).order_by(Channel.id)
    if not actor.is_manager:
        stmt = stmt.join(ChannelPermission, ChannelPermission.channel_id == Channel.id).where(
            ChannelPermission.user_id == actor.user_id, ChannelPermission.can_view.is_(True)
        )
    return [int(i) for i in uow.session.execute(stmt).scalars()]


def _permission(uow: UnitOfWork, actor: Actor, channel_id: int) -> tuple[bool, bool]:
    org = uow.session.execute(select(Channel.organization_id).where(Channel.id == channel_id)).scalar()
    if org is None or org != actor.organization_id:
        return False, False
    if actor.is_manager:
        return True, True
    row = uow.session.execute(
        select(ChannelPermission.can_view, ChannelPermission.can_send).where(
            ChannelPermission.user_id == actor.user_id, ChannelPermission.channel_id == channel_id
        )
    ).first()
    if row is None:
        return False, False
    return bool(row.can_view or row.can_send), bool(row.can_send)


def can_view_channel(uow: UnitOfWork, actor: Actor, channel_id: int) -> bool:
    return _permission(uow, actor, channel_id)[0]


def can_send_channel(uow: UnitOfWork, actor: Actor, channel_id: int) -> bool:
    return _permission(uow, actor, channel_id)[1]


def require_channel_view(uow: UnitOfWork, actor: Actor, channel_id: int) -> None:
    if not can_view_channel(uow, actor, channel_id):
        raise PermissionDenied(f"you have no permission to view channel {channel_id}")


def require_channel_send(uow: UnitOfWork, actor: Actor, channel_id: int) -> None:
    if not can_send_channel(uow, actor, channel_id):
        raise PermissionDenied(f"you have no permission to send on channel {channel_id}")
