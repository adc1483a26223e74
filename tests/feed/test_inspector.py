"""The feed inspector (admin → Users → Feed inspector) against the real services:
the feed as read_feed serves it, the snapshot's score breakdown, the live
ranking's drops, who may see it, and what it shows when ClickHouse cannot rank."""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Permission
from django.template.defaultfilters import floatformat

from feed import cache
from feed.inspector import BACKFILL, CHRONOLOGICAL, FRESH, RANKED, find_user, inspect_feed
from feed.models import User
from feed.read import read_feed
from nova.breaker import breaker_for

pytestmark = [pytest.mark.requires_clickhouse, pytest.mark.requires_redis, pytest.mark.requires_postgres]

URL = "/admin/feed/user/inspect-feed/"
BREAKDOWN = ("score", "freshness", "engagement", "affinity", "fatigue", "network-factor", "out-of-network")


class _Tables(HTMLParser):
    """{table id: [{"post": id, "part": ..., column class: cell text}]} for the inspector's tables."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.texts: dict[str, str] = {}  # element id -> its text
        self._table: str | None = None
        self._row: dict[str, str] | None = None
        self._cell: str | None = None
        self._text_id: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "table" and (table_id := attr.get("id")):
            self._table = table_id
            self.tables[table_id] = []
        elif tag == "tr" and self._table and attr.get("data-post-id"):
            self._row = {"post": attr["data-post-id"] or ""}
        elif tag == "td" and self._row is not None:
            self._cell = attr.get("class") or ""
            if self._cell:
                self._row[self._cell] = ""
        if (text_id := attr.get("id")) and tag in ("td", "p", "div"):
            self._text_id = text_id
            self.texts[text_id] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "td":
            self._cell = None
        if tag in ("td", "p", "div"):
            self._text_id = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._cell:
            self._row[self._cell] += data.strip()
        if self._text_id:
            self.texts[self._text_id] += data


def _page(client, **params) -> _Tables:
    response = client.get(URL, params)
    assert response.status_code == 200, response.content[:2000]
    parsed = _Tables()
    parsed.feed(response.content.decode())
    return parsed


def _snapshot(user_id: int) -> cache.Snapshot:
    snapshot = cache.first_page_state(user_id).snapshot
    assert snapshot is not None
    return snapshot


def test_inspection_is_the_served_feed_with_the_snapshots_numbers(inspector_world):
    w = inspector_world
    inspection = inspect_feed(w.alice.user, 50)
    assert (inspection.source, inspection.profile) == ("ranked", "default")
    snapshot = _snapshot(w.alice.id)
    assert inspection.snapshot_id == snapshot.id
    assert inspection.cache_age_seconds is not None and 0 <= inspection.cache_age_seconds < 60
    ranked = [item for item in inspection.items if item.part == RANKED]
    assert [item.post_id for item in ranked] == [entry.post_id for entry in snapshot.entries]
    assert [item.breakdown for item in ranked] == list(snapshot.entries)
    assert [item.rank for item in ranked] == list(range(1, len(ranked) + 1))
    # the world's marks are in the numbers: erin's post is out of network, carol is fatigued by the hide
    by_post = {item.post_id: item.breakdown for item in ranked}
    trending = by_post[w.trending.pk]
    assert trending is not None and trending.out_of_network and trending.network_factor == pytest.approx(0.75)
    carols = [by_post[p.pk] for p in w.posts["carol"][1:] if p.pk in by_post]
    assert carols and all(b is not None and b.fatigue < 1 for b in carols)
    # past the snapshot: the backfill (followed authors' posts not ranked), no breakdown
    rest = inspection.items[len(ranked) :]
    assert all(item.part == BACKFILL and item.breakdown is None and item.score is None for item in rest)

    # the drops come from a live ranking as of the snapshot: same feed, every reason
    assert inspection.live_error is None and inspection.live_matches_snapshot is True
    assert inspection.live_profile == "default"
    reasons = {d.post_id: d.reason for d in inspection.dropped or []}
    assert reasons[w.hidden.pk] == "hidden"
    assert reasons[w.seen.pk] == "seen"
    assert all(reasons[p.pk] == "muted" for p in w.posts["mallory"])
    assert not set(reasons) & {item.post_id for item in ranked}
    assert {d.author_username for d in inspection.dropped or [] if d.reason == "muted"} == {"mallory"}

    # and the page is what the user's own read gets next: the cached snapshot
    again = inspect_feed(w.alice.user, 50)
    assert again.source == "cache"
    assert again.snapshot_id == snapshot.id
    assert [item.post_id for item in again.items] == [item["id"] for item in read_feed(w.alice.id, 50).items]


def test_a_followees_post_newer_than_the_snapshot_is_shown_as_fresh(inspector_world):
    w = inspector_world
    inspect_feed(w.alice.user, 10)
    response = w.authors["bob"].api.post("/api/v1/posts/", {"body": "just now"}, format="json")
    assert response.status_code == 201
    inspection = inspect_feed(w.alice.user, 10)
    assert inspection.source == "cache"
    top = inspection.items[0]
    assert (top.post_id, top.part, top.rank, top.score, top.breakdown) == (response.json()["id"], FRESH, 1, None, None)
    assert inspection.items[1].part == RANKED


def test_staff_sees_the_breakdown_with_the_snapshots_numbers(inspector_world, client):
    w = inspector_world
    client.force_login(w.staff)
    page = _page(client, user="alice")
    assert page.texts["feed-source"].strip() == "ranked"
    assert page.texts["feed-profile"].strip() == "default"
    assert page.texts["feed-cache-age"].strip().endswith(" s")
    snapshot = _snapshot(w.alice.id)
    rows = page.tables["inspector-items"]
    ranked = [row for row in rows if row["part"] == RANKED]
    assert [int(row["post"]) for row in ranked] == [entry.post_id for entry in snapshot.entries]
    for row, entry in zip(ranked, snapshot.entries, strict=True):
        expected = {name: floatformat(getattr(entry, name.replace("-", "_")), 6) for name in BREAKDOWN[:-1]}
        expected["out-of-network"] = "yes" if entry.out_of_network else "no"
        assert {name: row[name] for name in BREAKDOWN} == expected, row
    assert all(row["part"] == BACKFILL and row["score"] == "—" for row in rows[len(ranked) :])
    dropped = {int(row["post"]): row["reason"] for row in page.tables["inspector-dropped"]}
    assert dropped[w.hidden.pk] == "hidden" and dropped[w.seen.pk] == "seen"

    # by id too, and the second look is served from the cache, as the user's next read would be
    by_id = _page(client, user=str(w.alice.id))
    assert by_id.texts["feed-source"].strip() == "cache"
    assert [row["post"] for row in by_id.tables["inspector-items"]] == [row["post"] for row in rows]


def test_the_user_admin_links_to_the_inspector(inspector_world, client):
    w = inspector_world
    client.force_login(w.staff)
    change = client.get(f"/admin/feed/user/{w.alice.id}/change/")
    assert change.status_code == 200
    assert f'href="{URL}?user={w.alice.id}">Inspect feed</a>' in change.content.decode()
    changelist = client.get("/admin/feed/user/")
    assert f'href="{URL}">Feed inspector</a>' in changelist.content.decode()
    # the empty form
    empty = client.get(URL)
    assert empty.status_code == 200
    assert 'id="inspect-form"' in empty.content.decode() and "inspector-items" not in empty.content.decode()


def test_only_staff_with_view_permission_get_in(inspector_world, client):
    w = inspector_world
    url = f"{URL}?user=alice"
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    client.force_login(w.alice.user)  # logged in, not staff
    refused = client.get(url)
    assert refused.status_code == 302 and refused["Location"].startswith("/admin/login/")
    assert "inspector-items" not in client.get(url, follow=True).content.decode()
    clerk = User.objects.create_user("clerk", password="x", is_staff=True)
    client.force_login(clerk)  # staff without the right to view users
    assert client.get(url).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_user", content_type__app_label="feed"))
    clerk = User.objects.get(pk=clerk.pk)  # permissions are cached on the instance
    client.force_login(clerk)
    assert "inspector-items" in client.get(url).content.decode()


@pytest.mark.parametrize("query", ["nobody", "987654321", "99999999999999999999999"])
def test_an_unknown_user_is_a_404_that_says_so(query, client, db):
    client.force_login(User.objects.create_superuser("root", password="root-password"))
    response = client.get(URL, {"user": query})
    assert response.status_code == 404
    body = response.content.decode()
    assert f"No user with id or username &quot;{query}&quot;." in body
    assert "inspector-items" not in body


def test_find_user_by_id_or_username(db):
    numeric = User.objects.create_user("2024")
    other = User.objects.create_user("someone")
    assert find_user(str(other.pk)) == other
    assert find_user(" someone ") == other
    assert find_user("2024") == (User.objects.filter(pk=2024).first() or numeric)
    assert find_user("") is None and find_user("nobody") is None


def test_open_breaker_the_page_says_fallback_and_why_there_are_no_drops(inspector_world, client):
    w = inspector_world
    client.force_login(w.staff)
    breaker_for("clickhouse").store.set_open(time.time())
    page = _page(client, user="alice")
    assert page.texts["feed-source"].strip() == "fallback (breaker_open)"
    assert page.texts["feed-profile"].strip() == "—"
    assert page.texts["feed-cache-age"].strip() == "no snapshot cached"
    assert "chronological fallback" in page.texts["fallback-note"]
    assert "circuit breaker open" in page.texts["dropped-unavailable"]
    rows = page.tables["inspector-items"]
    assert rows and all(row["part"] == CHRONOLOGICAL and row["score"] == "—" for row in rows)
    assert "inspector-dropped" not in page.tables


def test_a_cached_feed_keeps_its_breakdown_while_clickhouse_is_down(inspector_world, client):
    w = inspector_world
    client.force_login(w.staff)
    served = inspect_feed(w.alice.user, 20)
    breaker_for("clickhouse").store.set_open(time.time())
    inspection = inspect_feed(w.alice.user, 20)
    assert inspection.source == "cache"
    assert [item.breakdown for item in inspection.items] == [item.breakdown for item in served.items]
    assert inspection.dropped is None and "circuit breaker open" in (inspection.live_error or "")
    page = _page(client, user="alice")
    assert page.texts["feed-source"].strip() == "cache"
    assert "circuit breaker open" in page.texts["dropped-unavailable"]


def test_unreachable_clickhouse_the_page_still_renders(inspector_world, client, settings):
    w = inspector_world
    client.force_login(w.staff)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CLICKHOUSE = replace(settings.CLICKHOUSE, port=port, connect_timeout=1.0, query_timeout=1.0)
    page = _page(client, user="alice")
    assert page.texts["feed-source"].strip() == "fallback (ranking_failed)"
    assert "ClickHouse is unavailable" in page.texts["dropped-unavailable"]
    assert all(row["part"] == CHRONOLOGICAL for row in page.tables["inspector-items"])
