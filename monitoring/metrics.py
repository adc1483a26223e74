"""Every Prometheus metric Nova exports, declared once.

Names are fixed by the dashboards and alert rules in infra/prometheus/ and
listed in docs/operations/metrics.md (tests/monitoring/test_metric_names.py
keeps the three in step). Web processes expose them at /metrics; worker
processes start their own HTTP endpoint (monitoring.exposition.serve).
Under a multiprocess server (gunicorn, the Celery worker) every process writes
its values to PROMETHEUS_MULTIPROC_DIR and /metrics adds them up
(monitoring/exposition.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class ScrapeTimeGauge(Collector):
    """A gauge whose value is read when /metrics is scraped, never stored.

    A stored gauge would be one value per process under the multiprocess mode;
    this one is computed once per scrape by the process that answers it."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.function: Callable[[], float] | None = None
        REGISTRY.register(self)

    def set_function(self, function: Callable[[], float]) -> None:
        self.function = function

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation)
        if self.function is not None:
            family.add_metric([], self.function())
        yield family


# --- consumers (pipeline/consumers/framework.py), labelled by consumer name
CONSUMER_MESSAGES = Counter(
    "consumer_messages_total",
    "Messages consumed, by outcome (written, dropped as duplicates, dead_lettered).",
    ["consumer", "outcome"],
)
CONSUMER_BATCH_DURATION = Histogram(
    "consumer_batch_duration_seconds",
    "Time to write and commit one batch.",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_BATCH_SIZE = Histogram(
    "consumer_batch_size",
    "Messages per flushed batch.",
    ["consumer"],
    buckets=(1, 10, 100, 1000, 5000, 10000, 50000),
)
CONSUMER_LAG = Gauge(
    "consumer_lag",
    (
        "Messages between the partition's end and the first one the consumer has not written "
        "(read and held in memory counts)"
    ),
    ["consumer", "topic", "partition"],
)
CONSUMER_WRITE_ERRORS = Counter(
    "consumer_write_errors_total", "Failed sink writes (the batch is retried).", ["consumer"]
)
CONSUMER_COMMIT_ERRORS = Counter("consumer_commit_errors_total", "Offset commits the broker refused.", ["consumer"])
DLQ_MESSAGES = Counter("dlq_messages_total", "Messages sent to a dead-letter topic.", ["consumer", "topic"])


# ---------------------------------------------------------------- CDC (relay + consumer)
CDC_MESSAGES_PROCESSED = Counter(
    "cdc_messages_processed", "CDC change events written to ClickHouse replicas", ["table"]
)
CDC_PROCESSING_DURATION = Histogram(
    "cdc_processing_duration_seconds",
    "Time to decode and write one CDC batch to ClickHouse",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CDC_DLQ_MESSAGES = Counter("cdc_dlq_messages", "CDC messages sent to the dead-letter topic", ["reason"])
CDC_RELAY_CHANGES = Counter(
    "cdc_relay_changes", "Change events the relay produced to Kafka and the broker acknowledged", ["table", "op"]
)
CDC_SLOT_LAG_BYTES = Gauge(
    "cdc_slot_lag_bytes", "WAL bytes between the server's position and the slot's confirmed position", ["slot"]
)
CDC_SLOT_LAG_SECONDS = Gauge(
    "cdc_slot_lag_seconds", "Seconds since the relay last caught up with the WAL written before it looked", ["slot"]
)
CDC_RELAY_RECONNECTS = Counter("cdc_relay_reconnects", "Relay reconnects after a Postgres or Kafka failure", ["cause"])
# ---------------------------------------------------------------- end CDC

# --- events ingestion (pipeline/api.py, producer.py, consumers/events.py)
EVENTS_RECEIVED = Counter(
    "events_received_total",
    "Events received by the API, by outcome (accepted, rejected, unavailable).",
    ["outcome"],
)
EVENTS_PRODUCE_FAILURES = Counter(
    "events_produce_failures_total",
    "Events the broker did not acknowledge (delivery errors, timeouts, full queue).",
    ["reason"],
)
EVENTS_PROCESSING_DURATION = Histogram(
    "events_processing_duration_seconds",
    "Time for the events consumer to dedup and insert one batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEDUP_DUPLICATES = Counter(
    "dedup_detected_duplicates_total", "Client retries dropped by event_id (Redis SET NX marks)."
)
DEDUP_REPLAYS = Counter(
    "dedup_replays_total", "Messages seen again after a crash or rebalance (same message as the mark's), re-inserted."
)
CLICKHOUSE_INSERT_ERRORS = Counter(
    "clickhouse_insert_errors_total", "Failed ClickHouse inserts (the batch is retried).", ["table"]
)
EVENT_TO_VISIBLE = Histogram(
    "event_to_visible_seconds",
    "From the API's received_at to the event's insert into ClickHouse returning.",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60),
)
SOURCE_TOPIC_RESETS = Counter(
    "source_topic_resets_total",
    "Source partitions found recreated (the sink holds offsets past the partition's end, or offsets went back).",
    ["consumer", "topic"],
)

# --- ranking (ranking/service.py): what rank_feed fetched, removed and served
_SCORE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
RANKING_POSTS_FETCHED = Counter(
    "ranking_posts_fetched_total",
    "Candidates fetched for ranking, by source (in_network, out_of_network).",
    ["source"],
)
RANKING_POSTS_DEDUPLICATED = Counter(
    "ranking_posts_deduplicated_total", "Candidates removed because the post was already in the feed."
)
RANKING_POSTS_SATURATION_REMOVED = Counter(
    "ranking_posts_saturation_removed_total", "Candidates dropped by the per-author cap (author diversity)."
)
RANKING_FRESHNESS_SCORE = Histogram("ranking_freshness_score", "Freshness of served items.", buckets=_SCORE_BUCKETS)
RANKING_ENGAGEMENT_SCORE = Histogram("ranking_engagement_score", "Engagement of served items.", buckets=_SCORE_BUCKETS)
RANKING_AFFINITY_SCORE = Histogram("ranking_affinity_score", "Affinity of served items.", buckets=_SCORE_BUCKETS)
RANKING_FINAL_SCORE = Histogram("ranking_final_score", "Final score of served items.", buckets=_SCORE_BUCKETS)
RANKING_DURATION = Histogram(
    "ranking_duration_seconds",
    "rank_feed wall time, by part (query, total).",
    ["part"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5),
)

# --- feed read path (feed/read.py, feed/cache.py, nova/breaker.py, monitoring/middleware.py)
FEED_API_REQUESTS = Counter(
    "feed_api_requests_total",
    "API requests, by method, status and endpoint (the URL's name).",
    ["method", "status", "endpoint"],
)
FEED_API_DURATION = Histogram(
    "feed_api_duration_seconds",
    "API request wall time, by endpoint.",
    ["endpoint"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.8, 1, 2.5, 5),
)
FEED_API_ERRORS = Counter(
    "feed_api_errors_total",
    "API requests that failed on the server side (5xx or an exception).",
    ["method", "endpoint"],
)
API_THROTTLE_FAIL_OPEN = Counter(
    "api_throttle_fail_open_total",
    "Requests let through unchecked by a rate limit because Redis was unavailable.",
    ["limit"],
)
FEED_CACHE_HITS = Counter("feed_cache_hits_total", "Feed first pages served from a cached ranked snapshot.")
FEED_CACHE_MISSES = Counter("feed_cache_misses_total", "Feed first pages that found no cached snapshot.")
FEED_SOURCE = Counter(
    "feed_pages_served_total",
    "Feed pages served, by source (cache, ranked, fallback) and reason of a fallback.",
    ["source", "reason"],
)
FEED_RANKINGS = Counter("feed_rankings_total", "Rankings the feed ran (cache misses that did the work).")
CIRCUIT_BREAKER_STATE = Gauge(
    "circuit_breaker_state",
    "Breaker state as a process last saw it: 0 closed, 1 half-open, 2 open.",
    ["datasource"],
    multiprocess_mode="mostrecent",
)
CIRCUIT_BREAKER_STATE_CHANGES = Counter(
    "circuit_breaker_state_changes_total",
    "Breaker transitions, by the state entered.",
    ["datasource", "state"],
)
CLICKHOUSE_QUERY_TIMEOUTS = Counter(
    "clickhouse_query_timeouts_total",
    "Request-path ClickHouse queries cancelled at their deadline or timed out.",
    ["datasource"],
)
FEED_CACHE_MEMORY = ScrapeTimeGauge(
    "feed_cache_memory_bytes", "Redis used_memory, read at scrape time (the feed cache is most of it; NaN if down)."
)

# --- pipeline lag as the report_pipeline_lag task measured it (monitoring/pipeline_lag.py, web only)
CONSUMER_GROUP_LAG = "consumer_group_lag"
CDC_REPLICATION_SLOT_LAG_BYTES = "cdc_replication_slot_lag_bytes"
PIPELINE_LAG_REPORT_AGE = "pipeline_lag_report_age_seconds"
