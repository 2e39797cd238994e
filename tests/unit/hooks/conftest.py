"""The database the storage tests run against: SQLite always, PostgreSQL too when
CDS_TEST_POSTGRES_URL names one (the tests empty its tables before and after)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import delete

from cds_service.hooks.storage import Database, metadata

POSTGRES_URL = os.environ.get("CDS_TEST_POSTGRES_URL")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(not POSTGRES_URL, reason="set CDS_TEST_POSTGRES_URL to test PostgreSQL"),
        ),
    ]
)
def database_url(request, tmp_path):
    """The URL of an empty database with the service's tables; several engines may share it."""
    url = f"sqlite:///{tmp_path / 'cds.db'}" if request.param == "sqlite" else POSTGRES_URL
    database = Database(url)

    def empty():
        with database.begin() as conn:  # begin() creates the tables
            for table in reversed(metadata.sorted_tables):
                conn.execute(delete(table))

    empty()
    yield url
    empty()
    database.engine.dispose()
