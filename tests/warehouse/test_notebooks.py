"""Execute every analyst notebook with nbclient against a warehouse built from the demo's data (the
demo's organization, users, channel and generated history, imported through the real services)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from sqlalchemy import Engine

from switchboard.cli.demo import import_history, seed
from switchboard.settings import get_settings
from warehouse.build import build

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_are_there_and_each_says_its_question() -> None:
    assert [p.name for p in NOTEBOOKS] == ["agent_performance.ipynb", "response_times_sla.ipynb",
                                           "volume_forecast.ipynb"]
    for path in NOTEBOOKS:
        first = nbformat.read(path, as_version=4).cells[0]
        assert first.cell_type == "markdown" and "**Question:**" in first.source, path.name


@pytest.mark.timeout(900)
def test_every_notebook_runs_on_demo_data(settings_env: str, engine: Engine, tmp_path: Path) -> None:
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    seed(settings, engine)
    assert import_history(settings, engine)
    path = tmp_path / "warehouse"
    build(settings_env, path, full=True)
    env = {**os.environ, "WAREHOUSE_PATH": str(path), "PYTHONPATH": str(ROOT)}
    failures = {}
    for notebook in NOTEBOOKS:
        nb = nbformat.read(notebook, as_version=4)
        client = NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
        try:
            client.execute(env=env)
        except Exception as exc:  # noqa: BLE001 - report every notebook's failure, not only the first
            failures[notebook.name] = f"{exc.__class__.__name__}: {str(exc)[-2000:]}"
            continue
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.output_type == "error"]
        if errors:
            failures[notebook.name] = str(errors[0])
    assert not failures, failures
