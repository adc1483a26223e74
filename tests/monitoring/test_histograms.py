from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from monitoring.histograms import observe_many

BUCKETS = (0.05, 0.1, 0.5, 1, 5)


def _samples(histogram_name: str, registry: CollectorRegistry) -> dict[str, float]:
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for m in registry.collect()
        for s in m.samples
        if s.name.startswith(histogram_name) and not s.name.endswith("_created")
    }


@pytest.mark.parametrize(
    "values", [[], [0.0], [0.05], [0.0500001, 3, 7, 7, 0.2, -1], [float(i) / 100 for i in range(700)]]
)
def test_observe_many_equals_observing_one_by_one(values) -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("lat", "x", buckets=BUCKETS, registry=one)
    h2 = Histogram("lat", "x", buckets=BUCKETS, registry=many)
    for value in values:
        h1.observe(value)
    observe_many(h2, values)
    assert _samples("lat", many) == pytest.approx(_samples("lat", one))
