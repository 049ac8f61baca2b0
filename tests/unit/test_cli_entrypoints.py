"""The command line finds the files it starts, wherever the packages live."""

from __future__ import annotations

from switchboard.cli.main import app_entry


def test_switchboard_app_starts_the_real_streamlit_entrypoint() -> None:
    entry = app_entry()
    assert entry.is_file()
    assert entry.parent.name == "app" and "st.navigation" in entry.read_text()
