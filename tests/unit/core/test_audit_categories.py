"""Every audit action the code writes belongs to one category of the audit page's filter.

The actions are read from the code itself: module constants of the form ``word.word`` in the modules
that write audit rows, and literal ``action=`` arguments there — so a new action without a category
fails here rather than being unreachable by the filter.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from switchboard.auth.audit import CATEGORIES

ROOT = Path(__file__).resolve().parents[3] / "switchboard"
ACTION = re.compile(r"^[a-z_]+([.-][a-z_]+)+$")


def _written_actions() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in ROOT.rglob("*.py"):
        source = path.read_text()
        if "record_audit(" not in source and "insert(AuditLog)" not in source:
            continue
        tree = ast.parse(source)
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id.isupper() and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str) and ACTION.match(node.value.value)):
                found[node.value.value] = path.name
        for kw in ast.walk(tree):
            if isinstance(kw, ast.keyword) and kw.arg == "action" and isinstance(kw.value, ast.Constant):
                found[str(kw.value.value)] = path.name
    return found


def test_every_written_action_has_exactly_one_category() -> None:
    actions = _written_actions()
    assert {"auth.login", "permission.changed", "channel.paused", "import-events", "contact.erased",
            "outbox.cancelled", "organization.updated"} <= set(actions)  # the reader finds them
    for action, module in actions.items():
        owners = [name for name, prefixes in CATEGORIES.items() if action.startswith(prefixes)]
        assert len(owners) == 1, f"{action} ({module}) is in {owners or 'no category'}"
