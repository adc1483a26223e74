"""Fill Postgres with the demo social graph of feed.demo, fast (COPY), once.

1. If the demo user exists, say so and stop (unless --reset empties the social tables).
2. Generate the rows in memory (feed.demo.generate: deterministic per --seed).
3. COPY users, then posts, follows, likes, comments and mutes, in one transaction.
4. Give the demo user and the admin their documented local passwords; print them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from feed.demo import DemoGraph, DemoSizes, generate
from feed.models import User

DEMO_USERNAME, DEMO_PASSWORD = "demo", "demo-password"
ADMIN_USERNAME, ADMIN_PASSWORD = "admin", "admin-password"
# children before parents; DELETE rather than TRUNCATE so CDC sees ordinary row deletes
SOCIAL_TABLES = [
    "comments", "likes", "mutes", "follows", "posts",
    "authtoken_token", "django_admin_log", "users_groups", "users_user_permissions", "users",
]


def _copy(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _ids(table: str, column: str, owner_ids: list[int]) -> list[int]:
    """Ids of the rows just copied, in insertion order (COPY draws the sequence row by row)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} WHERE {column} = ANY(%s) ORDER BY id", [owner_ids])
        return [row[0] for row in cursor.fetchall()]


def write_graph(graph: DemoGraph) -> dict[str, int]:
    now = timezone.now()
    # one unusable hash for everyone: hashing 2,000 real passwords would take minutes
    unusable = make_password(None)
    _copy(
        "users",
        ["password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff", "is_active", "date_joined", "display_name", "bio"],
        ((unusable, False, username, "", "", "", False, True, now, display, bio) for username, display, bio in graph.users),
    )
    id_of = dict(User.objects.filter(username__in=[u[0] for u in graph.users]).values_list("username", "id"))
    user_ids = [id_of[username] for username, _, _ in graph.users]

    _copy(
        "posts",
        ["author_id", "created_at", "updated_at", "body", "media_url"],
        ((user_ids[author], at, at, body, media) for author, at, body, media in graph.posts),
    )
    post_ids = _ids("posts", "author_id", user_ids)
    _copy("follows", ["follower_id", "followee_id", "created_at"], ((user_ids[a], user_ids[b], at) for a, b, at in graph.follows))
    _copy("likes", ["user_id", "post_id", "created_at"], ((user_ids[u], post_ids[p], at) for u, p, at in graph.likes))
    _copy("comments", ["user_id", "post_id", "created_at", "body"], ((user_ids[u], post_ids[p], at, body) for u, p, at, body in graph.comments))
    _copy("mutes", ["user_id", "muted_id", "created_at"], ((user_ids[u], user_ids[m], at) for u, m, at in graph.mutes))
    return {
        "users": len(graph.users),
        "posts": len(graph.posts),
        "follows": len(graph.follows),
        "likes": len(graph.likes),
        "comments": len(graph.comments),
        "mutes": len(graph.mutes),
    }


class Command(BaseCommand):
    help = "Create the deterministic demo social graph (no-op when it already exists)."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = DemoSizes()
        parser.add_argument("--users", type=int, default=defaults.users)
        parser.add_argument("--posts", type=int, default=defaults.posts)
        parser.add_argument("--days", type=float, default=defaults.days, help="posts spread over this many past days")
        parser.add_argument("--mean-follows", type=int, default=defaults.mean_follows)
        parser.add_argument("--likes-per-post", type=float, default=defaults.likes_per_post)
        parser.add_argument("--comments-per-post", type=float, default=defaults.comments_per_post)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument(
            "--reset", action="store_true", help="first delete every row of the social tables (all users, posts, tokens): local use only"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["users"] < 2 or options["posts"] < 0:
            self.stderr.write("--users must be at least 2 and --posts not negative")
            raise SystemExit(2)
        if options["reset"]:
            with transaction.atomic(), connection.cursor() as cursor:
                for table in SOCIAL_TABLES:
                    cursor.execute(f"DELETE FROM {table}")
        elif User.objects.filter(username=DEMO_USERNAME).exists():
            self.stdout.write("Demo data already present (user 'demo' exists): nothing to do. --reset rebuilds it.")
            self._print_credentials()
            return

        started = time.monotonic()
        sizes = DemoSizes(
            users=options["users"],
            posts=options["posts"],
            days=options["days"],
            mean_follows=options["mean_follows"],
            likes_per_post=options["likes_per_post"],
            comments_per_post=options["comments_per_post"],
        )
        graph = generate(sizes, seed=options["seed"], now=timezone.now())
        with transaction.atomic():
            counts = write_graph(graph)
            demo = User.objects.get(username=DEMO_USERNAME)
            demo.set_password(DEMO_PASSWORD)
            demo.save(update_fields=["password"])
            admin, _ = User.objects.get_or_create(
                username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True, "display_name": "Admin"}
            )
            admin.is_staff = admin.is_superuser = True
            admin.set_password(ADMIN_PASSWORD)
            admin.save()
        summary = ", ".join(f"{count:,} {name}" for name, count in counts.items())
        self.stdout.write(f"Seeded {summary} in {time.monotonic() - started:.1f}s (seed {options['seed']}).")
        self._print_credentials()

    def _print_credentials(self) -> None:
        self.stdout.write(
            f"  demo user:  {DEMO_USERNAME} / {DEMO_PASSWORD}   (POST /api/v1/auth/token/)\n"
            f"  superuser:  {ADMIN_USERNAME} / {ADMIN_PASSWORD}  (http://127.0.0.1:8000/admin/)\n"
            "  (fixed local-only passwords; never run seed_demo against a shared database)"
        )
