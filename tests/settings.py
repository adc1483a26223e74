"""Settings for the test suite: the real local services, isolated namespaces.

pytest-django creates `test_nova` in Postgres; ClickHouse gets its own database,
Redis its own key prefix and Kafka its own topic prefix, so the suite can run
beside `make run` on the same services.
"""

import os

# Subprocesses started by a test (consumers, relays) may get their own namespace
# (ClickHouse database, topic prefix) so concurrent runs don't share state.
# NOVA_TEST_SESSION=x gives a whole pytest session its own namespace and Postgres
# test database, so two sessions can share the local services.
_SESSION = os.environ.get("NOVA_TEST_SESSION", "")
_NS = os.environ.get("NOVA_TEST_NAMESPACE") or _SESSION or "test"
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key")
os.environ["CLICKHOUSE_DATABASE"] = f"nova_{_NS}"
os.environ["KAFKA_TOPIC_PREFIX"] = f"nova{_NS}"
os.environ["REDIS_KEY_PREFIX"] = f"nova{_NS}"
# consumer groups of their own: members of one group subscribed to another
# session's topics stall each other's rebalances on the shared broker
os.environ.setdefault("CDC_CONSUMER_GROUP", f"nova{_NS}-cdc")
os.environ.setdefault("EVENTS_CONSUMER_GROUP", f"nova{_NS}-events")
# Celery workers started by tests consume only their namespace's queue
os.environ["CELERY_TASK_DEFAULT_QUEUE"] = f"nova{_NS}"

from nova.settings import *  # noqa: E402,F403

if _SESSION:
    DATABASES["default"]["TEST"] = {"NAME": f"test_nova_{_SESSION}"}  # noqa: F405

# Celery on the shared Redis: besides its own queue, a namespace keeps kombu's
# bookkeeping (unacked messages, bindings) apart, so a worker of another session
# never restores or sees ours; results are kept so a test can wait for a task's answer
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"nova{_NS}:celery:"}
CELERY_RESULT_BACKEND = REDIS_URL  # noqa: F405
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"nova{_NS}:celery:"}
CELERY_RESULT_EXPIRES = 3600

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns when it is missing
