"""Settings for `manage.py run_events_consumer` started as a subprocess by a test.

The test suite's settings, plus the topic prefix and group of the test that
started it (NOVA_TEST_TOPIC_PREFIX, NOVA_TEST_CONSUMER_GROUP), so each test has
its own topics, group and sink offsets while sharing the suite's services.
"""

import dataclasses
import os

from tests.settings import *  # noqa: F403

KAFKA = dataclasses.replace(KAFKA, topic_prefix=os.environ["NOVA_TEST_TOPIC_PREFIX"])  # noqa: F405
EVENTS_CONSUMER_GROUP = os.environ["NOVA_TEST_CONSUMER_GROUP"]
