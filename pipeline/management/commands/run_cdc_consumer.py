"""`run_consumer cdc`: Debezium change events -> ClickHouse replicas (pipeline/consumers/cdc.py)."""

from pipeline.consumers.command import ConsumerCommand


class Command(ConsumerCommand):
    consumer_name = "cdc"
