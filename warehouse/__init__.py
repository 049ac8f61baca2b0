"""The DuckDB warehouse: extract from Postgres, SQL models (staging → intermediate → marts), read API.

Build with :func:`warehouse.build.build`; read with :mod:`warehouse.queries`.
"""
