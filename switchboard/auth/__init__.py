"""Authentication and access control: passwords, TOTP, sessions, users, audit."""

from __future__ import annotations
