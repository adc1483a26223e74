"""Settings of the feed API benchmark's server (bench/feed_api.py): the product's
settings unchanged, with a URLconf that adds two comparison views which exist
only for the benchmark (bench/feed_api_site.py). Never used by the product:

    DJANGO_SETTINGS_MODULE=bench.feed_api_settings gunicorn nova.wsgi ...
"""

from nova.settings import *  # noqa: F403  (the product's settings, as they are)

ROOT_URLCONF = "bench.feed_api_site"
