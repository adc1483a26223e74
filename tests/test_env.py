from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from nova.env import env_bool, env_int, env_list, env_secret, parse_database_url


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("true", True), ("ON", True), ("0", False), ("no", False), ("", False)]
)
def test_env_bool(monkeypatch, raw, expected) -> None:
    monkeypatch.setenv("X_FLAG", raw)
    assert env_bool("X_FLAG", not expected) is expected


def test_env_errors_name_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG", False)
    monkeypatch.setenv("X_PORT", "eighty")
    with pytest.raises(ImproperlyConfigured, match="X_PORT"):
        env_int("X_PORT", 1)


def test_defaults_and_lists(monkeypatch) -> None:
    monkeypatch.delenv("X_MISSING", raising=False)
    assert env_int("X_MISSING", 7) == 7
    monkeypatch.setenv("X_LIST", " a, b ,,c ")
    assert env_list("X_LIST", []) == ["a", "b", "c"]


def test_env_secret_reads_file(monkeypatch, tmp_path) -> None:
    path = tmp_path / "secret"
    path.write_text("s3cret\n")
    monkeypatch.setenv("X_SECRET_FILE", str(path))
    assert env_secret("X_SECRET") == "s3cret"
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="X_SECRET_FILE"):
        env_secret("X_SECRET")


def test_parse_database_url() -> None:
    db = parse_database_url("DATABASE_URL", "postgres://u:p%40ss@db.example:5433/nova?sslmode=require")
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "nova",
        "u",
        "p@ss",
        "db.example",
        "5433",
    )
    assert db["OPTIONS"] == {"sslmode": "require"}
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        parse_database_url("DATABASE_URL", "mysql://x/y")
