from pipeline.consumers.command import ConsumerCommand


class Command(ConsumerCommand):
    pass
