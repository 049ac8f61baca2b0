"""Execute every analyst notebook with nbclient against a warehouse built from demo-like data."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from sqlalchemy import Engine

from tests.warehouse.seed import T
from tests.warehouse.test_build import scenario
from warehouse.build import build

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook() -> None:
    assert any(p.name == "response_times.ipynb" for p in NOTEBOOKS)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(notebook: Path, engine: Engine, db_url: str, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    scenario(engine)
    path = tmp_path / "warehouse"
    build(db_url, path, full=True, now=T("2026-03-03 12:00"))
    monkeypatch.setenv("WAREHOUSE_PATH", str(path))  # the kernel inherits the environment
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent.parent)}})
    client.execute(env={**os.environ, "WAREHOUSE_PATH": str(path)})
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
