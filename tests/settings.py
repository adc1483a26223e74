"""Settings for the test suite: the real local services, isolated namespaces.

pytest-django creates `test_<db>` in Postgres; ClickHouse gets its own database,
Redis its own logical database and Kafka its own topic prefix, so the suite can
run beside `make run` on the same services.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("CLICKHOUSE_DATABASE", "nova_test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:56379/15")
os.environ.setdefault("KAFKA_TOPIC_PREFIX", "novatest")
os.environ.setdefault("CACHE_KEY_PREFIX", "novatest")

from nova.settings import *  # noqa: E402,F403

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns when it is missing
