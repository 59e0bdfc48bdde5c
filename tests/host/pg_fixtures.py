"""A real PostgreSQL for tests: one server per test module, a fresh database per test.

    from pg_fixtures import needs_postgres, pg_server, pg_url  # noqa: F401 (fixtures)
    pytestmark = [needs_postgres]

    def test_something(pg_url):      # postgresql://citynode_app:PASS@127.0.0.1:PORT/<fresh database>
        ...
"""

import re

import pytest

from citynode.postgres import INSTALL_HINT, LocalPostgres, postgres_path

needs_postgres = pytest.mark.skipif(postgres_path() is None,
                                    reason="PostgreSQL 15+ is not installed (%s)" % INSTALL_HINT)


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory):
    with LocalPostgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture
def pg_url(pg_server, request):
    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50]
    return pg_server.create_database(name)
