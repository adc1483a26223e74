"""The feed inspector in a real headless browser: log in through the admin's login
form on a live server, open a ranked user's feed, read the breakdown table as
rendered; a non-staff user gets the login page and no breakdown."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.conf import settings
from django.template.defaultfilters import floatformat
from django.test import Client

from feed import cache

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the requires_browser marker fails the test and says what to install
    pass

pytestmark = [
    pytest.mark.requires_browser,
    pytest.mark.requires_clickhouse,
    pytest.mark.requires_redis,
    pytest.mark.requires_postgres,
    pytest.mark.timeout(300),
]

URL = "/admin/feed/user/inspect-feed/"
WAIT_SECONDS = 20
BREAKDOWN = ("score", "freshness", "engagement", "affinity", "fatigue", "network factor", "out of network")


def _wait(browser, condition):
    return WebDriverWait(browser, WAIT_SECONDS).until(condition)


def _log_in(browser, live_server, username: str, password: str, next_url: str) -> None:
    browser.get(f"{live_server.url}/admin/login/?next={quote(next_url)}")
    _wait(browser, until.visibility_of_element_located((By.ID, "login-form")))
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()


def _cell(row, name: str) -> str:
    return row.find_element(By.CSS_SELECTOR, f"td.{name.replace(' ', '-')}").text.strip()


def test_staff_reads_the_breakdown_and_a_non_staff_user_is_refused(inspector_world, live_server, browser):
    w = inspector_world
    _log_in(browser, live_server, "root", "root-password", f"{URL}?user=alice")
    table = _wait(browser, until.visibility_of_element_located((By.ID, "inspector-items")))
    assert browser.find_element(By.ID, "feed-source").text.strip() == "ranked"
    # lower(): the admin's stylesheet shows table headers in capitals
    headers = [th.text.strip().lower() for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert headers[:4] == ["rank", "post", "author", "part"] and headers[4:] == list(BREAKDOWN)

    # the live server ranked and cached alice's feed: its numbers are the snapshot's
    snapshot = cache.first_page_state(w.alice.id).snapshot
    assert snapshot is not None
    rows = [row for row in table.find_elements(By.CSS_SELECTOR, "tr.inspector-item") if _cell(row, "part") == "ranked"]
    assert [int(row.get_attribute("data-post-id")) for row in rows] == [e.post_id for e in snapshot.entries]
    for row, entry in zip(rows, snapshot.entries, strict=True):
        assert row.is_displayed()
        for name in BREAKDOWN[:-1]:
            assert _cell(row, name) == floatformat(getattr(entry, name.replace(" ", "_")), 6), (name, entry)
        assert _cell(row, "out of network") == ("yes" if entry.out_of_network else "no")
    dropped = _wait(browser, until.visibility_of_element_located((By.ID, "inspector-dropped")))
    reasons = {
        int(row.get_attribute("data-post-id")): _cell(row, "reason")
        for row in dropped.find_elements(By.CSS_SELECTOR, "tr.inspector-drop")
    }
    assert reasons[w.hidden.pk] == "hidden" and reasons[w.seen.pk] == "seen"

    # from the user's change page: the link opens the same feed, now from the cache
    browser.get(f"{live_server.url}/admin/feed/user/{w.alice.id}/change/")
    # by href: the admin's stylesheet shows the link text in capitals
    link = _wait(
        browser, until.element_to_be_clickable((By.CSS_SELECTOR, f'.object-tools a[href="{URL}?user={w.alice.id}"]'))
    )
    assert link.text.strip().lower() == "inspect feed"
    link.click()
    _wait(browser, until.text_to_be_present_in_element((By.ID, "feed-source"), "cache"))
    again = browser.find_elements(By.CSS_SELECTOR, "#inspector-items tr.inspector-item")
    served_ids = [int(row.get_attribute("data-post-id")) for row in again]
    assert served_ids[: len(rows)] == [entry.post_id for entry in snapshot.entries]

    # a non-staff user: the admin's login form turns them away...
    browser.delete_all_cookies()
    _log_in(browser, live_server, "alice", "alice-password", f"{URL}?user=alice")
    error = _wait(browser, until.visibility_of_element_located((By.CSS_SELECTOR, "#content .errornote")))
    assert "staff account" in error.text
    assert not browser.find_elements(By.ID, "inspector-items")
    # ...and with a session of their own, the inspector sends them to the login page
    session = Client()
    session.force_login(w.alice.user)
    cookie = session.cookies[settings.SESSION_COOKIE_NAME].value
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": cookie, "path": "/"})
    browser.get(f"{live_server.url}{URL}?user=alice")
    _wait(browser, until.visibility_of_element_located((By.ID, "login-form")))
    assert "/admin/login/" in browser.current_url
    assert "You are authenticated as alice, but are not authorized" in browser.find_element(By.ID, "content").text
    assert not browser.find_elements(By.ID, "inspector-items")
