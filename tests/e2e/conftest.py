"""One private, complete Nova for the end-to-end tests (tests/support/stack.py):
started once per session, stopped at the end, its logs printed on a failure."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from tests.support.stack import ROOT, Stack

# Short cache lifetimes and intervals so a test sees a change within seconds; the
# rest is the product's defaults
E2E_SETTINGS = {
    "FEED_CACHE_TTL_SECONDS": "3",
    "FEED_WARM_INTERVAL_SECONDS": "2",
    "TRENDING_REFRESH_SECONDS": "5",
    "CIRCUIT_BREAKER_COOL_DOWN_SECONDS": "2",
    "PIPELINE_LAG_REPORT_SECONDS": "2",
    # one client address registers every test user
    "API_THROTTLE_USER": "100000/min",
    "API_THROTTLE_REGISTER_ADDRESS": "1000/hour",
}


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # under the checkout's var/, not pytest's 0700 temporary directory: the private
    # Postgres runs as the postgres user, which must reach its data directory
    workdir = ROOT / "var" / "e2e" / uuid.uuid4().hex[:8]
    workdir.mkdir(parents=True)
    system = Stack(workdir, overrides=E2E_SETTINGS)
    try:
        system.up()
        yield system
    finally:
        system.down()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    system = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(system, Stack):
        report.sections.append(("process logs", system.logs()))
