"""Write a supervisord configuration that runs every process of a Procfile.

The Procfile stays the one list of Nova's processes; `make run` regenerates
the configuration from it on every start and runs `supervisord` in the
foreground. Unlike a Procfile runner that stops everything when one process
exits, supervisord restarts the process that crashed and keeps the others
serving:

- a process that ends without being asked to is started again at once; if it
  ends again before `startsecs`, the next start waits 1 s, then 2 s, 3 s ...
  (supervisord's backoff) and after `startretries` quick failures in a row it
  is left FATAL (`supervisorctl -c var/run/supervisord.conf start NAME`);
- every exit and start is a line on the terminal (`exited: NAME (...)`,
  `spawned: NAME with pid N`), the processes' own output goes there too;
- Ctrl-C (SIGINT) or SIGTERM stops every process (SIGTERM to its whole
  process group, SIGKILL after `stopwaitsecs`) before supervisord exits.

Each command runs as `bash -c 'exec COMMAND'`, as a Procfile runner does, so
`${VAR:-default}` in the Procfile still expands from the environment.

Usage: python procfile_supervisor.py PROCFILE RUN_DIR > supervisord.conf
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

# seconds a process must stay up to count as started; a shorter life is a
# failed start, retried with backoff (1 s, 2 s, ... startretries s)
START_SECONDS = 5
START_RETRIES = 60
# Procfile runners wait about as long before SIGKILL; gunicorn's graceful
# timeout (Procfile) is 20 s
STOP_WAIT_SECONDS = 25


def parse_procfile(text: str) -> list[tuple[str, str]]:
    """(name, command) per line, in order; blank lines and # comments skipped."""
    processes: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not sep or not _NAME.match(name) or not command:
            raise ValueError(f"Procfile line {number} is not 'name: command': {line!r}")
        if name in dict(processes):
            raise ValueError(f"Procfile line {number}: process {name!r} is listed twice")
        processes.append((name, command))
    return processes


def _ini(value: str) -> str:
    # supervisord expands %(name)s in its values: a literal % is written %%
    return value.replace("%", "%%")


def render(processes: list[tuple[str, str]], workdir: Path, run_dir: Path) -> str:
    lines = [
        "; generated from the Procfile by infra/local/procfile_supervisor.py on each `make run`: edit the Procfile",
        "[supervisord]",
        "nodaemon=true",
        # in the foreground supervisord also prints its log (exits, restarts) on stdout
        f"logfile={_ini(str(run_dir / 'supervisord.log'))}",
        "loglevel=info",
        f"pidfile={_ini(str(run_dir / 'supervisord.pid'))}",
        f"directory={_ini(str(workdir))}",
        "",
        "[unix_http_server]",
        f"file={_ini(str(run_dir / 'supervisord.sock'))}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_ini(str(run_dir / 'supervisord.sock'))}",
    ]
    for name, command in processes:
        lines += [
            "",
            f"[program:{name}]",
            f"command=/bin/bash -c {_ini(shlex.quote('exec ' + command))}",
            f"directory={_ini(str(workdir))}",
            "autostart=true",
            "autorestart=true",
            f"startsecs={START_SECONDS}",
            f"startretries={START_RETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.rsplit("Usage: ", 1)[1].strip(), file=sys.stderr)
        return 2
    procfile, run_dir = Path(argv[1]).resolve(), Path(argv[2]).resolve()
    sys.stdout.write(render(parse_procfile(procfile.read_text()), procfile.parent, run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
