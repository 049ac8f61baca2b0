"""The Streamlit app: inbox, assignment, analytics, admin."""

from __future__ import annotations
