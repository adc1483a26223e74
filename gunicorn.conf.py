"""gunicorn's settings for the web, read from the working directory by
`gunicorn nova.wsgi` (Procfile, Dockerfile); the command line adds the rest.

Prometheus multiprocess mode (monitoring/exposition.py): the workers write their
metrics to PROMETHEUS_MULTIPROC_DIR and /metrics adds every worker's up. The
variable is set here, in the master, before anything imports prometheus_client,
so that the workers forked from it inherit it. Without one in the environment,
each master gets its own temporary directory, removed when it exits.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

_own_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="nova-prometheus-web-")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from monitoring import exposition  # noqa: E402  (after the variable: it imports prometheus_client)


def on_starting(server) -> None:
    exposition.reset_multiprocess_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server, worker) -> None:
    exposition.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _own_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
