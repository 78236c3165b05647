"""The database servers CI and every developer machine run, and whether they answer."""

from __future__ import annotations

import sqlalchemy

SERVERS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}


def reachable(url: str) -> str | None:
    """None if the server answers, else why not."""
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:  # any driver or network error means: skip, saying why
        return f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
    return None
