"""`make run`'s process manager: supervisord, configured from the Procfile by
infra/local/procfile_supervisor.py. A worker killed with SIGKILL is restarted
while the web process keeps answering; SIGINT (Ctrl-C) stops every process,
children of children included.

The processes are a small Procfile of the same shape as Nova's (a web server
and a worker that forks a child), so the test needs no Nova service."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import listener_pid

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "infra" / "local" / "procfile_supervisor.py"
SUPERVISORD = Path(sys.executable).parent / "supervisord"

# the worker writes "its pid, its child's pid" on each start, then waits
WORKER = (
    "import os, subprocess, sys, time; "
    "child = subprocess.Popen(['sleep', '600']); "
    "open(sys.argv[1], 'a').write(f'{os.getpid()} {child.pid}\\n'); "
    "time.sleep(600)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _generate(procfile: Path, run_dir: Path) -> str:
    return subprocess.run(
        [sys.executable, str(GENERATOR), str(procfile), str(run_dir)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _web_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _starts(pid_file: Path) -> list[tuple[int, int]]:
    if not pid_file.exists():
        return []
    pairs = [line.split() for line in pid_file.read_text().splitlines() if line.strip()]
    return [(int(first), int(second)) for first, second in pairs]


def test_generated_config_lists_every_procfile_process() -> None:
    names = [line.partition(":")[0] for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    config = _generate(ROOT / "Procfile", ROOT / "var" / "run")
    assert [line[len("[program:") : -1] for line in config.splitlines() if line.startswith("[program:")] == names
    assert config.count("autorestart=true") == len(names)
    assert config.count("stopasgroup=true") == config.count("killasgroup=true") == len(names)
    # ${WEB_BIND:-...} is left to bash; % is escaped from supervisord's own expansion
    assert "exec gunicorn nova.wsgi --bind ${WEB_BIND:-127.0.0.1:8000}" in config


@pytest.mark.timeout(120)
def test_killed_worker_is_restarted_while_web_serves_and_sigint_stops_all(tmp_path: Path) -> None:
    port = _free_port()
    pid_file = tmp_path / "worker.pids"
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f"web: {sys.executable} -m http.server ${{TEST_WEB_PORT}} --bind 127.0.0.1 --directory {tmp_path}\n"
        f'worker: {sys.executable} -c "{WORKER}" {pid_file}\n'
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = tmp_path / "supervisord.conf"
    config.write_text(_generate(procfile, run_dir))
    # a pipe, as a terminal would be: supervisord and every process write to
    # /dev/stdout, which re-opened on a regular file would overwrite itself
    supervisor = subprocess.Popen(
        [str(SUPERVISORD), "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TEST_WEB_PORT": str(port)},
    )
    output: list[str] = []
    stdout = supervisor.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: output.extend(stdout), daemon=True)
    reader.start()
    try:
        _wait(lambda: _web_answers(port), 30, "the web process")
        ((worker_pid, _child_pid),) = _wait(lambda: _starts(pid_file), 30, "the worker's first start")

        os.kill(worker_pid, signal.SIGKILL)
        # the web process answers every request while the worker is down and restarted
        deadline = time.monotonic() + 30
        while len(_starts(pid_file)) < 2:
            assert _web_answers(port), "web stopped answering after the worker was killed"
            assert time.monotonic() < deadline, "the killed worker was not restarted"
            time.sleep(0.05)
        new_worker_pid, new_child_pid = _starts(pid_file)[1]
        assert new_worker_pid != worker_pid and _alive(new_worker_pid)
        assert _web_answers(port)
        web_pid = _wait(lambda: _listener(port), 5, "the web pid")
        text = "".join(output)
        assert "exited: worker (terminated by SIGKILL; not expected)" in text
        assert text.count("spawned: 'worker'") == 2 and text.count("spawned: 'web'") == 1

        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=60) == 0
        reader.join(timeout=10)
        text = "".join(output)
        for pid in (web_pid, new_worker_pid, new_child_pid):
            assert not _alive(pid), f"pid {pid} outlived supervisord"
        assert "stopped: worker" in text and "stopped: web" in text
        assert not _web_answers(port)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        # the first worker's child was orphaned by the SIGKILL (as a real
        # worker's would be); do not leave it behind
        for start in _starts(pid_file):
            for pid in start:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def _listener(port: int) -> int | None:
    try:
        return listener_pid(port)
    except LookupError:
        return None
