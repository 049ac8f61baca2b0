"""Local fakes of external platforms, served over real HTTP on 127.0.0.1."""
