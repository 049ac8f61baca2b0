"""`switchboard contact erase` as an operator runs it (a subprocess against a real database)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select

from switchboard.db.schema import AuditLog, Contact, Message
from switchboard.uow import UnitOfWork
from tests.integration.services.conftest import build_world
from tests.integration.test_cli import run


def test_contact_erase_command(engine: Engine, db_url: str, tmp_path: Path) -> None:
    w = build_world(engine)
    w.ingest(w.wa, "4915550001", "wamid.1", 0, "my secret", "Carla")
    w.ingest(w.other_ch, "4915550009", "wamid.9", 0, "the other organization's", "Olga")
    with UnitOfWork(engine) as uow:
        ids = dict(uow.session.execute(select(Contact.organization_id, Contact.id)).tuples().all())
    carla, olga = ids[w.org], ids[w.org2]

    r = run(db_url, tmp_path, "contact", "erase", str(carla), "--org", "Acme")
    assert r.returncode == 2 and "--yes" in r.stderr and "Traceback" not in r.stderr  # not confirmed
    r = run(db_url, tmp_path, "contact", "erase", str(carla), "--yes")
    assert r.returncode == 2 and "several organizations" in r.stderr
    r = run(db_url, tmp_path, "contact", "erase", str(olga), "--org", "Acme", "--yes")
    assert r.returncode == 2 and "not found" in r.stderr  # another organization's contact

    r = run(db_url, tmp_path, "contact", "erase", str(carla), "--org", "Acme", "--yes")
    assert r.returncode == 0, r.stderr
    assert "erased, now shown as 'Erased contact" in r.stdout and "1 message(s) in 1 conversation(s)" in r.stdout
    r = run(db_url, tmp_path, "contact", "erase", str(carla), "--org", "Acme", "--yes")
    assert r.returncode == 0 and "already erased" in r.stdout
    with UnitOfWork(engine) as uow:
        bodies = dict(uow.session.execute(select(Message.organization_id, Message.body)).tuples().all())
        audit = uow.session.execute(select(AuditLog.target, AuditLog.actor_user_id)
                                    .where(AuditLog.action == "contact.erased")).all()
    assert bodies == {w.org: None, w.org2: "the other organization's"}
    assert [tuple(a) for a in audit] == [(f"contact {carla}", None)]
