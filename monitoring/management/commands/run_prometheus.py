"""Run Debian's Prometheus against this machine's Nova processes (monitoring/prometheus_local.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from monitoring import prometheus_local


class Command(BaseCommand):
    help = "Scrape the local web and worker processes with the rules of infra/prometheus/ (UI: --listen)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--listen", default="127.0.0.1:9090", help="the web UI's address (default %(default)s)")
        parser.add_argument(
            "--dir",
            dest="directory",
            help="config and data directory (default %(default)s)",
            default=str(Path(settings.BASE_DIR) / "var" / "prometheus-local"),
        )

    def handle(self, *args: Any, listen: str, directory: str, **options: Any) -> None:
        if shutil.which("prometheus") is None:
            raise CommandError("prometheus is not installed: apt-get install prometheus")
        config = prometheus_local.write_local_config(Path(directory), prometheus_local.process_ports())
        argv = prometheus_local.command(config, Path(directory) / "data", listen)
        self.stdout.write(f"Prometheus at http://{listen}/ (alerts: /alerts): {' '.join(argv)}")
        os.execv(argv[0], argv)
