from tests.monitoring.promql import metric_names


def test_metric_names_of_expressions() -> None:
    assert metric_names(
        'histogram_quantile(0.95, sum by (le) (rate(feed_api_duration_seconds_bucket{endpoint="feed",le!="x{"}[5m])))'
    ) == {"feed_api_duration_seconds_bucket"}
    assert metric_names("redis_memory_used_bytes / (redis_memory_max_bytes > 0) > 0.85") == {
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
    }
    assert metric_names("(sum(rate(a_total[1m])) or vector(0)) + on (job) group_left (x) b_total offset 5m") == {
        "a_total",
        "b_total",
    }
    assert metric_names("sum(rate(x_total[$__rate_interval])) * 60 and bool 1e3") == {"x_total"}
    assert metric_names('nova:consumer_group_lag:sum{group=~".*events.*"} > 100000') == {"nova:consumer_group_lag:sum"}
    assert metric_names('up{job=~"cdc_relay|celery"}') == {"up"}
