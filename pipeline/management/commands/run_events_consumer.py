from __future__ import annotations

import dataclasses

from pipeline.consumers.command import ConsumerCommand
from pipeline.consumers.events import build_events_handler
from pipeline.consumers.faults import CrashPoint, Faults


class Command(ConsumerCommand):
    consumer_name = "events"
    help = "Consume nova.events into ClickHouse (dedup by event_id, offsets in the sink)."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        # negative controls and fault injection for the chaos tests only: the
        # first two lose or double data on a crash, the third crashes on purpose
        parser.add_argument(
            "--test-no-sink-seek",
            action="store_true",
            help="TESTS ONLY, unsafe: do not seek past the offsets ClickHouse holds",
        )
        parser.add_argument(
            "--test-no-mark-identity",
            action="store_true",
            help="TESTS ONLY, unsafe: dedup marks do not name their message (plain SET NX)",
        )
        parser.add_argument(
            "--test-crash-at",
            type=CrashPoint.parse,
            default=None,
            metavar="POINT:N",
            help="TESTS ONLY: SIGKILL itself at after-dedup:N or after-insert:N (N-th batch write)",
        )

    def build_faults(self, options) -> Faults:
        return dataclasses.replace(
            super().build_faults(options),
            no_sink_seek=options["test_no_sink_seek"],
            no_mark_identity=options["test_no_mark_identity"],
            crash_at=options["test_crash_at"],
        )

    def build_handler(self, spec, faults: Faults):
        return build_events_handler(faults)
