"""The documented production settings pass Django's deployment checks, and nothing
ships a fallback secret."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# the variables README's "Production settings" section lists
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_ALLOWED_HOSTS": "nova.example.com",
    "DJANGO_SECURE_SSL_REDIRECT": "1",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "DJANGO_SECURE_HSTS_PRELOAD": "1",
    "DJANGO_SECURE_COOKIES": "1",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "1",
}


def _check_deploy(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="nova.settings", DJANGO_SECRET_KEY=secrets.token_urlsafe(50), **extra)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_https_settings():
    result = _check_deploy(PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_them():
    result = _check_deploy({"DJANGO_DEBUG": "0"})
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout  # no HSTS


def test_docker_compose_has_no_fallback_secret_key():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    secret = compose["x-nova-env"]["DJANGO_SECRET_KEY"]
    assert secret.startswith("${DJANGO_SECRET_KEY:?"), secret


@pytest.mark.requires_postgres
@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_api_docs_load_their_assets_from_the_package(client, path):
    page = client.get(path).content.decode()
    assert "cdn.jsdelivr.net" not in page and "@latest" not in page
    assert "/static/drf_spectacular_sidecar/" in page
