"""A real PostgreSQL for tests: one server per test module, a fresh database per test.

    from pg_fixtures import needs_postgres, pg_server, pg_store_url, pg_url  # noqa: F401 (fixtures)
    pytestmark = [needs_postgres]

    def test_something(pg_url):        # postgresql://citynode_app:PASS@127.0.0.1:PORT/<fresh, empty database>
        ...
    def test_other(pg_store_url):      # the same, with the store's tables already made
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


def _name(request):
    return "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50]


@pytest.fixture
def pg_url(pg_server, request):
    """A fresh, empty database."""
    return pg_server.create_database(_name(request))


@pytest.fixture(scope="module")
def _store_template(pg_server):
    from citynode.fleet.pg_store import PgStore

    url = pg_server.create_database("citynode_template")
    PgStore(url).close()
    return "citynode_template"


@pytest.fixture
def pg_store_url(pg_server, _store_template, request):
    """A fresh database with the store's schema already migrated (quicker than migrating each time)."""
    return pg_server.create_database(_name(request), template=_store_template)
