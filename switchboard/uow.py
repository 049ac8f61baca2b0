"""Unit of work: one transaction around one service call (cosmicpython style)."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session


class UnitOfWork:
    """``with UnitOfWork(engine) as uow: ...; uow.commit()`` — rolls back unless committed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = Session(self.engine, expire_on_commit=False)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
