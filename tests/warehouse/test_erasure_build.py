"""After a contact is erased, the next incremental build re-extracts the erased rows and equals a full build."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select

from switchboard.db.schema import Conversation
from switchboard.services.erasure import erase_contact
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from tests.warehouse.conftest import work
from tests.warehouse.seed import Seed, T
from tests.warehouse.test_incremental import assert_same_as_full
from warehouse.build import build


def test_incremental_build_after_an_erasure_equals_a_full_build(engine: Engine, db_url: str,
                                                                 tmp_path: Path) -> None:
    s = Seed(engine)
    wa, ann = s.channel("wa"), s.user("ann@x.io")
    a, b = s.conversation(wa, "a"), s.conversation(wa, "b")
    erased = {s.inbound(a, "2026-03-02 09:00", "my address is 1 Main St"),
              s.reply(a, "2026-03-02 09:03", None, "thanks, noted")}
    s.accept(a, "2026-03-02 09:01", ann)
    s.reply(a, "2026-03-02 09:05", ann, "done")
    s.complete(a, "2026-03-02 09:30", ann)
    s.inbound(b, "2026-03-02 09:10", "another customer")
    s.accept(b, "2026-03-02 09:11", ann)
    s.reply(b, "2026-03-02 09:12", ann, "hello")
    inc = tmp_path / "inc"
    build(db_url, inc, full=True, now=T("2026-03-02 12:00"))

    def lengths() -> dict[int, int]:
        with work(inc) as con:
            return {int(m): int(n) for m, n in con.execute(
                "select message_id, body_length_chars from stg_messages where conversation_id = ?", [a]).fetchall()}

    assert all(n > 0 for n in lengths().values())
    with UnitOfWork(engine) as uow:
        contact = uow.session.execute(select(Conversation.contact_id).where(Conversation.id == a)).scalar_one()
        report = erase_contact(uow, Actor.system(s.org_id), contact, now=T("2026-03-02 12:30"))
        uow.commit()
    assert report.messages == 3
    r = build(db_url, inc, now=T("2026-03-02 13:00"))
    assert not r.full and r.rows_extracted["messages"] == 3  # the erased rows, re-extracted
    assert set(lengths().values()) == {0} and erased <= set(lengths())
    assert_same_as_full(db_url, inc, tmp_path, "2026-03-02 13:00")
