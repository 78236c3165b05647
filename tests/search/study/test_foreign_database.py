"""A server database that holds another application's tables is refused before Optuna would add
its own: on PostgreSQL and MariaDB, each test with a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy

from search.study.storage import StorageError, open_user_storage
from tests.helpers.servers import SERVERS, reachable


@pytest.fixture(params=sorted(SERVERS))
def app_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A new database on the server holding one table of 'an application'; its URL."""
    server = SERVERS[request.param]
    why = reachable(server)
    if why is not None:
        pytest.skip(f"{request.param} server at {server} is unreachable: {why}")
    name = f"app_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    url = server.rsplit("/", 1)[0] + f"/{name}"
    app = sqlalchemy.create_engine(url)
    with app.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
    app.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE {name}"))
        admin.dispose()


def test_foreign_server_database_is_refused_and_left_as_it_was(app_database: str) -> None:
    with pytest.raises(StorageError, match=r"not an Optuna storage: it holds other tables \(invoices\)"):
        open_user_storage(app_database, must_exist=False)
    engine = sqlalchemy.create_engine(app_database)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    # Rule: no Optuna table was created beside the application's.
    assert tables == {"invoices"}
