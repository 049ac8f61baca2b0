"""HTTP entrypoints served by ``switchboard serve``: the webhook receiver and ``GET /health``."""
