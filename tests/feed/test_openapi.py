"""The OpenAPI document validates and describes every route under /api/v1/."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.requires_postgres


def _api_v1_routes() -> set[str]:
    """Every concrete path under api/v1/, with converters written the OpenAPI way ({pk})."""
    routes: set[str] = set()

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
                # drf-spectacular names a `pk` parameter `id` (SCHEMA_COERCE_PATH_PK)
                routes.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route).replace("{pk}", "{id}"))

    walk(get_resolver().url_patterns, "")
    return routes


def test_schema_validates_and_lists_every_route(tmp_path):
    out = tmp_path / "schema.yml"
    # --validate checks against the OpenAPI 3 JSON schema; --fail-on-warn turns any
    # guess drf-spectacular had to make (an undocumented view, an unknown type) into an error
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(out))
    schema = json.loads(out.read_text())
    documented = {path for path in schema["paths"] if path.startswith("/api/v1/")}
    assert documented == _api_v1_routes()
    assert len(documented) >= 12


def test_write_operations_document_their_errors(client):
    schema = json.loads(client.get("/api/schema/?format=json").content)
    posts = schema["paths"]["/api/v1/posts/"]["post"]["responses"]
    assert {"201", "400", "401", "413"} <= set(posts)
    delete = schema["paths"]["/api/v1/posts/{id}/"]["delete"]["responses"]
    assert {"204", "401", "403", "404"} <= set(delete)
    follow = schema["paths"]["/api/v1/users/{id}/follow/"]["post"]["responses"]
    assert {"200", "201", "400", "404"} <= set(follow)
    id_parameter = schema["paths"]["/api/v1/posts/{id}/"]["get"]["parameters"][0]
    assert id_parameter["schema"]["type"] == "integer"
