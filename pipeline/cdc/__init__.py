"""Change data capture: Postgres logical decoding (pgoutput) -> Debezium envelopes
on Kafka -> ClickHouse replica tables. See docs/architecture/cdc.md."""
