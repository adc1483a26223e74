"""The registry of Nova's consumers: `manage.py run_consumer NAME` runs one.

Each entry says which topics, which group, where dead letters go and which
handler turns messages into sink writes; the runner in framework.py does the
rest. Handlers are imported lazily so a registry import stays cheap.
"""

from __future__ import annotations

from pipeline.consumers.framework import ConsumerSpec

CONSUMERS: dict[str, ConsumerSpec] = {}


def register(spec: ConsumerSpec) -> ConsumerSpec:
    if spec.name in CONSUMERS:
        raise ValueError(f"consumer {spec.name!r} is registered twice")
    CONSUMERS[spec.name] = spec
    return spec
