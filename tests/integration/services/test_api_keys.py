"""API key services on real PostgreSQL: the secret shown once and stored hashed, validation, the key's
actor in the policy (scopes, channel restriction, revocation at once), usage, idempotency records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from switchboard.clock import utcnow
from switchboard.db.schema import ApiIdempotency, ApiKey
from switchboard.errors import AuthError, Conflict, InvalidInput, NotFound, PermissionDenied
from switchboard.policy import Action, require, visible_channel_ids
from switchboard.services.api_keys import (
    api_key_usage,
    authenticate,
    create_api_key,
    forget_old_responses,
    list_api_keys,
    remember_response,
    replayed_response,
    revoke_api_key,
)
from switchboard.services.inbox_views import get_thread
from switchboard.types import Actor

from .conftest import World


def _create(world: World, **kw: object) -> tuple[int, str]:
    args: dict[str, object] = {"name": "shop", "scopes": ["messages:read"], **kw}
    with world.uow() as u:
        created = create_api_key(u, world.admin, **args)  # type: ignore[arg-type]
    return created.view.id, created.key


def test_the_secret_is_shown_once_and_only_its_hash_is_kept(world: World) -> None:
    key_id, key = _create(world, scopes=["messages:send", "contacts:read", "messages:send"], channel_keys=["tg"])
    with world.uow() as u:
        stored = u.session.execute(text("select k::text from api_keys k")).scalar_one()
        (view,) = list_api_keys(u, world.admin)
    assert key not in stored and key[len("sb_live_"):] not in stored
    assert view.prefix == key[:14] and view.scopes == ("messages:send", "contacts:read")
    assert view.channel_keys == ("tg",) and view.created_by == "admin@acme.test" and view.status() == "active"
    with world.uow() as u:
        assert list_api_keys(u, Actor.system(world.org2)) == []


@pytest.mark.parametrize(("kw", "error", "words"), [
    ({"scopes": []}, InvalidInput, "at least one scope"),
    ({"scopes": ["admin"]}, InvalidInput, "unknown scope 'admin'"),
    ({"name": " "}, InvalidInput, "name"),
    ({"expires_in_days": 0}, InvalidInput, "1 to 3650"),
    ({"rate_limit_per_minute": 0}, InvalidInput, "rate limit"),
    ({"channel_keys": ["nope"]}, NotFound, "no channel 'nope'"),
])
def test_bad_keys_are_refused(world: World, kw: dict[str, object], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        _create(world, **kw)


def test_a_channel_of_another_organization_cannot_be_named(world: World) -> None:
    with world.uow() as u:
        other_key = u.session.execute(text("select key from channels where id = :c"), {"c": world.other_ch}).scalar()
    assert other_key == "wa-main"  # org2's channel has the same key as ours: ours is meant
    key_id, _ = _create(world, channel_keys=["wa-main"])
    with world.uow() as u:
        assert u.session.execute(select(ApiKey.channel_ids).where(ApiKey.id == key_id)).scalar_one() == [world.wa]


def test_the_key_actor_has_its_scopes_and_channels_and_stops_when_revoked(world: World) -> None:
    key_id, key = _create(world, scopes=["messages:read"], channel_keys=["tg"])
    conv = world.ingest(world.wa, "c1", "m1", 0).conversation_ids
    with world.uow() as u:
        actor = authenticate(u, key).actor
    assert actor.api_key_id == key_id and actor.acting_user_id is None
    with world.uow() as u:
        assert require(u, actor, Action.READ_MESSAGES) == actor
        with pytest.raises(PermissionDenied, match="'messages:send'"):
            require(u, actor, Action.SEND_MESSAGES)
        with pytest.raises(PermissionDenied, match="API keys may not manage users"):
            require(u, actor, Action.MANAGE_USERS)
        assert visible_channel_ids(u, actor) == {world.tg}
        with pytest.raises(PermissionDenied, match="restricted"):
            get_thread(u, actor, next(iter(conv)))
    with world.uow() as u:
        revoke_api_key(u, world.admin, key_id)
    with world.uow() as u, pytest.raises(PermissionDenied, match="revoked"):
        require(u, actor, Action.READ_MESSAGES)  # an actor made a second ago is refused at once
    with world.uow() as u, pytest.raises(AuthError, match="revoked"):
        authenticate(u, key)
    with world.uow() as u, pytest.raises(NotFound):
        revoke_api_key(u, Actor.system(world.org2), key_id)


def test_usage_and_the_rate_limit_window(world: World) -> None:
    key_id, key = _create(world, rate_limit_per_minute=2)
    t = utcnow().replace(second=10, microsecond=0)
    with world.uow() as u:
        checks = [authenticate(u, key, now=t + timedelta(seconds=i)).retry_after for i in range(3)]
        later = authenticate(u, key, now=t + timedelta(minutes=1)).retry_after
    assert checks == [None, None, 48] and later is None  # 50 s left in the first minute at :12
    with world.uow() as u:
        (day,) = api_key_usage(u, world.admin, now=t)
    assert (day.api_key_id, day.requests, day.messages_sent, day.errors) == (key_id, 4, 0, 0)


def test_idempotency_records(world: World) -> None:
    key_id, _ = _create(world)
    with world.uow() as u:
        assert replayed_response(u, key_id, "k", "h1") is None
        assert remember_response(u, key_id, "k", "h1", 202, {"id": 1}).body == {"id": 1}
        assert remember_response(u, key_id, "k", "h1", 202, {"id": 2}).body == {"id": 1}  # the first stays
    with world.uow() as u:
        assert replayed_response(u, key_id, "k", "h1").body == {"id": 1}  # type: ignore[union-attr]
        with pytest.raises(Conflict, match="different request"):
            replayed_response(u, key_id, "k", "h2")
    with world.uow() as u:
        assert forget_old_responses(u, utcnow() + timedelta(hours=25)) == 1
        assert u.session.execute(select(func.count()).select_from(ApiIdempotency)).scalar_one() == 0
