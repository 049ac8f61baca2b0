"""Sign-in timing: does a refused sign-in take as long for an unknown address as for a real account?

Starts a scratch embedded PostgreSQL, one enrolled user, and calls the sign-in service the way the
sign-in page does (``login`` in one unit of work, committed), alternating an unknown address and the
real one, for the cases issue 18 names: wrong password, disabled account, wrong code, and the
recovery-code page. Each address gets a new random local part every ``lockout_attempts - 1`` calls so
that no lockout shortens the work. Prints the median and p90 per case and the difference of medians.

    .venv/bin/python bench/bench_signin.py --rounds 40

Expectation: the medians of each pair differ by less than their spread (argon2 dominates, ~50 ms).
Not part of the test suite: timing belongs here, behaviour in tests/.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchboard.auth.enrollment import confirm_enrollment  # noqa: E402
from switchboard.auth.login import (  # noqa: E402
    PendingLogin,
    Refusal,
    login,
    login_with_recovery_code,
    verify_password_step,
)
from switchboard.auth.totp import code_at  # noqa: E402
from switchboard.auth.users import create_user  # noqa: E402
from switchboard.db.engine import scratch_database  # noqa: E402
from switchboard.db.migrate import upgrade  # noqa: E402
from switchboard.db.schema import User  # noqa: E402
from switchboard.services.organizations import create_organization  # noqa: E402
from switchboard.settings import Settings, load_settings, new_secret_key  # noqa: E402
from switchboard.uow import UnitOfWork  # noqa: E402

PASSWORD = "correct horse battery"
KEY = bytes(range(32))


def _user(engine: Engine, org: int, email: str, settings: Settings) -> tuple[int, str]:
    with UnitOfWork(engine) as uow:
        created = create_user(uow, org, email=email, name="Bench", role="agent", secret_key=KEY, password=PASSWORD)
        uow.commit()
    earlier = datetime.fromtimestamp(time.time() - 120, UTC)
    with UnitOfWork(engine) as uow:
        pending = verify_password_step(uow, email, PASSWORD, earlier, settings=settings)
    assert isinstance(pending, PendingLogin)
    with UnitOfWork(engine) as uow:
        confirm_enrollment(uow, pending, code_at(created.totp_secret, earlier), earlier, secret_key=KEY,
                           settings=settings)
        uow.commit()
    return created.user_id, created.totp_secret


def _timed(engine: Engine, call: Callable[[UnitOfWork], object]) -> float:
    start = time.perf_counter()
    with UnitOfWork(engine) as uow:
        result = call(uow)
        uow.commit()
    elapsed = time.perf_counter() - start
    assert isinstance(result, Refusal), result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="refused sign-ins per address and case")
    args = parser.parse_args()

    url = scratch_database("bench_signin")
    upgrade(url)
    engine = create_engine(url, pool_size=2)
    settings = load_settings(database_url=url, switchboard_secret_key=new_secret_key(), smtp_host=None)

    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Bench")
        uow.commit()
    users: dict[str, tuple[int, str]] = {}

    def address(case: str, real: bool, i: int) -> str:
        """A fresh address every lockout_attempts - 1 calls (a fresh account too, for the real side)."""
        generation = i // (settings.lockout_attempts - 1)
        email = f"{'real' if real else 'nobody'}-{case.replace(' ', '-')}-{generation}@bench.test"
        if real and email not in users:
            users[email] = _user(engine, org, email, settings)
            if case == "disabled":
                with engine.begin() as con:
                    con.execute(update(User).where(User.id == users[email][0]).values(status="disabled"))
        return email

    def attempt(case: str, email: str) -> Callable[[UnitOfWork], object]:
        secret = users.get(email, (0, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"))[1]
        now = datetime.now(UTC)
        code = code_at(secret, now)
        wrong = "000000" if code != "000000" else "111111"
        if case == "recovery code":
            return lambda uow: login_with_recovery_code(uow, email, PASSWORD, "ABCDE-FGHJK", now,
                                                        settings=settings)
        password = "wrong password!" if case == "wrong password" else PASSWORD
        otp = wrong if case == "wrong code" else code
        return lambda uow: login(uow, email, password, otp, now, secret_key=KEY, settings=settings)

    print(f"{'case':<16} {'address':<8} {'median ms':>10} {'p90 ms':>8}   median difference")
    for case in ("wrong password", "disabled", "wrong code", "recovery code"):
        samples: dict[bool, list[float]] = {True: [], False: []}
        for i in range(args.rounds):
            for real in (False, True):
                email = address(case, real, i)
                samples[real].append(_timed(engine, attempt(case, email)) * 1000)
        medians = {real: statistics.median(v) for real, v in samples.items()}
        for real in (False, True):
            p90 = statistics.quantiles(samples[real], n=10)[-1]
            diff = f"   {medians[True] - medians[False]:+.2f} ms" if real else ""
            print(f"{case:<16} {'real' if real else 'unknown':<8} {medians[real]:>10.2f} {p90:>8.2f}{diff}")
    engine.dispose()


if __name__ == "__main__":
    main()
