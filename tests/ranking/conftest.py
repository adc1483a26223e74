"""The CDC namespace fixture, for test_pipeline_path (the whole write path into the ranking)."""

from tests.pipeline.cdc.conftest import cdc_ns  # noqa: F401 - a fixture: pytest looks for it here
