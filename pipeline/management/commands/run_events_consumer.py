from pipeline.consumers.command import ConsumerCommand
from pipeline.consumers.events import build_events_handler


class Command(ConsumerCommand):
    consumer_name = "events"
    help = "Consume nova.events into ClickHouse (dedup by event_id, offsets in the sink)."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        # negative controls for the fault-injection tests only: each loses or doubles data
        parser.add_argument("--test-no-sink-seek", action="store_true", help="TESTS ONLY: unsafe")
        parser.add_argument("--test-no-mark-identity", action="store_true", help="TESTS ONLY: unsafe")

    def build_runner(self, options):
        runner = super().build_runner(options)
        if options["test_no_sink_seek"] or options["test_no_mark_identity"]:
            runner.handler = build_events_handler(
                sink_seek=not options["test_no_sink_seek"], mark_identity=not options["test_no_mark_identity"]
            )
        return runner
