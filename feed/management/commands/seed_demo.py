"""Fill Postgres with the demo social graph of feed.demo, fast (COPY), once.

1. If the demo user exists, say so and stop (unless --reset empties the social tables).
2. Generate the rows in memory (feed.demo.generate: deterministic per --seed).
3. COPY users, then posts, follows, likes, comments and mutes, in one transaction.
4. Give the demo user and the admin random passwords, kept in var/demo-credentials.txt
   (0600; reused by --reset) and printed.

Refuses a database that is not on this machine unless --force: --reset deletes every
user, and the demo accounts get known passwords.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from feed.demo import DemoGraph, DemoSizes, generate
from feed.models import User

DEMO_USERNAME, ADMIN_USERNAME = "demo", "admin"
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}  # "" is the Unix socket
_CREDENTIAL_LINE = re.compile(r"^\s*(?:demo user|superuser):\s+(\S+) / (\S+)", re.MULTILINE)
# children before parents; DELETE rather than TRUNCATE so CDC sees ordinary row deletes
SOCIAL_TABLES = [
    "comments",
    "likes",
    "mutes",
    "follows",
    "posts",
    "authtoken_token",
    "django_admin_log",
    "users_groups",
    "users_user_permissions",
    "users",
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
        [
            "password",
            "is_superuser",
            "username",
            "first_name",
            "last_name",
            "email",
            "is_staff",
            "is_active",
            "date_joined",
            "display_name",
            "bio",
        ],
        (
            (unusable, False, username, "", "", "", False, True, now, display, bio)
            for username, display, bio in graph.users
        ),
    )
    id_of = dict(User.objects.filter(username__in=[u[0] for u in graph.users]).values_list("username", "id"))
    user_ids = [id_of[username] for username, _, _ in graph.users]

    _copy(
        "posts",
        ["author_id", "created_at", "updated_at", "body", "media_url"],
        ((user_ids[author], at, at, body, media) for author, at, body, media in graph.posts),
    )
    post_ids = _ids("posts", "author_id", user_ids)
    _copy(
        "follows",
        ["follower_id", "followee_id", "created_at"],
        ((user_ids[a], user_ids[b], at) for a, b, at in graph.follows),
    )
    _copy("likes", ["user_id", "post_id", "created_at"], ((user_ids[u], post_ids[p], at) for u, p, at in graph.likes))
    _copy(
        "comments",
        ["user_id", "post_id", "created_at", "body"],
        ((user_ids[u], post_ids[p], at, body) for u, p, at, body in graph.comments),
    )
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
            "--credentials-file",
            type=Path,
            default=settings.BASE_DIR / "var" / "demo-credentials.txt",
            help="where the generated passwords are kept (and read on later runs)",
        )
        parser.add_argument("--force", action="store_true", help="run against a database on another host")
        parser.add_argument(
            "--reset",
            action="store_true",
            help="first delete every row of the social tables (all users, posts, tokens): local use only",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["users"] < 2 or options["posts"] < 0:
            self.stderr.write("--users must be at least 2 and --posts not negative")
            raise SystemExit(2)
        host = connection.settings_dict.get("HOST") or ""
        if host not in LOCAL_HOSTS and not options["force"]:
            raise CommandError(
                f"the database is on {host!r}, not this machine: seed_demo writes accounts with "
                "known passwords (and --reset deletes every user). --force if you mean it."
            )
        credentials_file: Path = options["credentials_file"]
        if options["reset"]:
            with transaction.atomic(), connection.cursor() as cursor:
                for table in SOCIAL_TABLES:
                    cursor.execute(f"DELETE FROM {table}")
        elif User.objects.filter(username=DEMO_USERNAME).exists():
            self.stdout.write("Demo data already present (user 'demo' exists): nothing to do. --reset rebuilds it.")
            self._print_credentials(credentials_file)
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
        passwords = _read_passwords(credentials_file) or {
            DEMO_USERNAME: secrets.token_urlsafe(12),
            ADMIN_USERNAME: secrets.token_urlsafe(12),
        }
        graph = generate(sizes, seed=options["seed"], now=timezone.now())
        with transaction.atomic():
            counts = write_graph(graph)
            demo = User.objects.get(username=DEMO_USERNAME)
            demo.set_password(passwords[DEMO_USERNAME])
            demo.save(update_fields=["password"])
            admin, _ = User.objects.get_or_create(
                username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True, "display_name": "Admin"}
            )
            admin.is_staff = admin.is_superuser = True
            admin.set_password(passwords[ADMIN_USERNAME])
            admin.save()
            _write_passwords(credentials_file, passwords)
        summary = ", ".join(f"{count:,} {name}" for name, count in counts.items())
        self.stdout.write(f"Seeded {summary} in {time.monotonic() - started:.1f}s (seed {options['seed']}).")
        self._print_credentials(credentials_file)

    def _print_credentials(self, credentials_file: Path) -> None:
        if credentials_file.exists():
            self.stdout.write(credentials_file.read_text().rstrip())
        else:
            self.stdout.write(f"  ({credentials_file} is missing: `manage.py changepassword demo`, or --reset)")


def _read_passwords(path: Path) -> dict[str, str]:
    return dict(_CREDENTIAL_LINE.findall(path.read_text())) if path.exists() else {}


def _write_passwords(path: Path, passwords: dict[str, str]) -> None:
    """Only this user may read them (0600), written before the transaction commits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(
        f"  demo user:  {DEMO_USERNAME} / {passwords[DEMO_USERNAME]}   (POST /api/v1/auth/token/)\n"
        f"  superuser:  {ADMIN_USERNAME} / {passwords[ADMIN_USERNAME]}   (http://127.0.0.1:8000/admin/)\n"
        f"  (generated by seed_demo for this checkout; kept in {path})\n"
    )
