"""The ``meddx`` command in tests.

Most tests run it in this process through the console script's own entry point
(:func:`meddx.cli.main.run`): the exit status, the one-line message of an expected error and the
printed output are the ones users get, without a fresh interpreter importing torch, MONAI and
transformers (about 10 s on 2 cores) for every call. Tests of the process itself (kill -9 and
resume, ``python -m meddx`` exiting 2 without a traceback, servers) start one with
:func:`meddx_process`.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from unittest import mock

import torch

MEDDX = [sys.executable, "-m", "meddx"]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def meddx_cli(*args, env: dict[str, str | None] | None = None, stdin: str = "",
              check: bool = False) -> CliResult:
    """``meddx ARGS`` in this process; ``check``: fail the test on a non-zero exit status."""
    from meddx.cli.main import run

    out, err = io.StringIO(), io.StringIO()
    # A command's --threads must not slow down the tests after it.
    threads = torch.get_num_threads()
    code = 0
    with (mock.patch.dict(os.environ), mock.patch.object(sys, "argv", ["meddx", *map(str, args)]),
          mock.patch.object(sys, "stdin", io.StringIO(stdin)), redirect_stdout(out),
          redirect_stderr(err)):
        for key, value in (env or {}).items():  # None: unset for this command
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = str(value)
        try:
            run()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        finally:
            torch.set_num_threads(threads)
    result = CliResult(code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"meddx {' '.join(map(str, args))} exited {code}:\n"
                             f"{result.stdout}{result.stderr}")
    return result


def meddx_process(*args, env: dict[str, str] | None = None,
                  timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m meddx ARGS`` as a separate process, as users run it."""
    return subprocess.run([*MEDDX, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def assert_clear_error(result: CliResult | subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2, one message naming each fragment, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
