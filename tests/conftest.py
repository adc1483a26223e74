"""Shared fixtures. Integration tests use the real local services started by
`make test` (infra/local/services.sh); a test marked requires_<service> fails at
once with a clear message when that service is down, instead of hanging; so does
a test marked requires_browser when headless chromium or its driver is missing."""

from __future__ import annotations

import importlib.util
import shutil
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from monitoring.health import CHECKS, close_clients
from nova.clickhouse import make_client
from pipeline.clickhouse_migrations import MigrationRunner

_SERVICE_MARKERS = {f"requires_{name}": name for name in CHECKS}
_service_state: dict[str, str | None] = {}


def _service_down_reason(name: str) -> str | None:
    if name not in _service_state:
        try:
            CHECKS[name](2.0)
            _service_state[name] = None
            close_clients()  # a kept Postgres connection would block dropping the test database
        except Exception as exc:  # any failure means "down"; the message says which
            _service_state[name] = f"{type(exc).__name__}: {exc}"
    return _service_state[name]


BROWSER_TOOLS = ("chromium", "chromedriver")


def _browser_missing() -> list[str]:
    missing = [tool for tool in BROWSER_TOOLS if shutil.which(tool) is None]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium (pip)")
    return missing


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers():
        service = _SERVICE_MARKERS.get(marker.name)
        if service and (reason := _service_down_reason(service)):
            pytest.fail(
                f"{service} is not reachable ({reason}); start the local services with "
                "`make services` (infra/local/services.sh up)",
                pytrace=False,
            )
        # fail, not skip, like the services: a skipped UI test would pass unnoticed
        if marker.name == "requires_browser" and (missing := _browser_missing()):
            pytest.fail(
                f"the headless browser is missing ({', '.join(missing)}); `make test` installs it "
                "(infra/local/services.sh test-tools: apt-get install chromium chromium-driver; "
                "pip install -r requirements-test.txt)",
                pytrace=False,
            )


@pytest.fixture
def browser() -> Iterator:
    """Headless chromium driven by Selenium through Debian's chromedriver; every
    page load and script is bounded, so a stuck page fails the test instead of
    hanging it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    # explicit paths: Selenium Manager would otherwise look for (and download) a driver
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "chromedriver"))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def _readiness_clients_closed() -> Iterator[None]:
    """/readyz keeps one client per dependency; close them after each test, since a
    kept Postgres connection would block dropping the test database at the end."""
    yield
    close_clients()


@pytest.fixture(scope="session")
def clickhouse_db() -> Iterator[str]:
    """A fresh ClickHouse database for this test session, with every migration applied."""
    config = settings.CLICKHOUSE
    admin = make_client(config, database="default")
    admin.execute(f"DROP DATABASE IF EXISTS `{config.database}`")
    MigrationRunner(make_client(config), admin, config.database, settings.CLICKHOUSE_SQL_DIR).apply()
    yield config.database


@pytest.fixture
def clickhouse(clickhouse_db: str):
    client = make_client(settings.CLICKHOUSE)
    yield client
    client.disconnect()


@pytest.fixture
def unique_name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def world_db() -> Iterator:
    """A private ClickHouse database per test (migrations applied), for worlds
    written with ranking.world: each test's world is alone in its tables."""
    name = f"nova_rank_{uuid.uuid4().hex[:10]}"
    admin = make_client(settings.CLICKHOUSE, database="default")
    client = make_client(settings.CLICKHOUSE, database=name)
    MigrationRunner(client, admin, name, settings.CLICKHOUSE_SQL_DIR).apply()
    yield client
    client.disconnect()
    admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.disconnect()


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Each test starts with empty rate-limit windows (nova/throttling.py): every test
    client is 127.0.0.1, and failed sign-ins of one test would lock out the next."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        keys = list(client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:throttle:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.exceptions.ConnectionError:
        pass  # a test that needs Redis says so with requires_redis
    finally:
        client.close()
