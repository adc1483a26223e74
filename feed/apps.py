from django.apps import AppConfig


class FeedConfig(AppConfig):
    name = "feed"

    def ready(self) -> None:
        from feed import cache
        from monitoring import metrics

        # read at scrape time, so every web process reports the shared Redis
        metrics.FEED_CACHE_MEMORY.set_function(cache.redis_used_memory)
