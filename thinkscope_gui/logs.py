"""One log for every entry point: a rotating file in ``$THINKSCOPE_HOME/logs`` plus stderr.

Why: acquisitions and trainings run unattended for hours; when one fails overnight the
terminal is gone, so every failure must also land in a file that can be read afterwards.
Headless (no Qt, no torch) so cli/, pairs/, learn/ and ui/ can all use it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path
from types import TracebackType

LOG_NAME = "thinkscope.log"
MAX_BYTES = 2 << 20
BACKUPS = 5
_FORMAT = "%(asctime)s %(levelname)-7s %(process)d %(name)s: %(message)s"
_installed: dict[str, logging.Handler] = {}


def log_dir() -> Path:
    """``$THINKSCOPE_HOME/logs`` (``~/.thinkscope/logs`` by default)."""
    env = os.environ.get("THINKSCOPE_HOME")
    home = Path(env).expanduser() if env else Path.home() / ".thinkscope"
    return home / "logs"


def log_path() -> Path:
    """The current log file."""
    return log_dir() / LOG_NAME


class _Scope(logging.Filter):
    """For commands stderr shows only the command's own messages; library records go to
    the file only (the command already reports their failure in its own words, once)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_reported", False):
            return False  # report() printed it already
        return record.name.startswith(self.prefix) or record.levelno >= logging.CRITICAL


class _LogFile(logging.handlers.RotatingFileHandler):
    """The rotating log file; a write failure (disk full, size limit) is said once on
    stderr in one line and the file is then left alone, never a traceback per record."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging API
        if not self.failed:
            self.failed = True
            err = sys.exc_info()[1]
            print(f"thinkscope: cannot write the log {self.baseFilename}: {err}",
                  file=sys.stderr)


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201 - logging's own attribute
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup_logging(command: str, *, stderr: bool = True,
                  stderr_scope: str = "thinkscope_gui.cli") -> Path | None:
    """Install the rotating file handler (INFO and up, all loggers) and a plain stderr
    handler (WARNING and up, loggers under ``stderr_scope``; "" for all, as the GUI uses).
    Idempotent. Returns the log file, or None when it cannot be written (then only stderr
    is used, and that is said once)."""
    root = logging.getLogger()
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    path: Path | None = log_path()
    if "file" not in _installed:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = _LogFile(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
        except OSError as exc:
            print(f"{command}: cannot write the log {path}: {exc}", file=sys.stderr)
            path = None
        else:
            fh.setFormatter(logging.Formatter(_FORMAT))
            fh.setLevel(logging.INFO)
            root.addHandler(fh)
            _installed["file"] = fh
    elif not isinstance(_installed["file"], logging.FileHandler):
        path = None
    if stderr and "stderr" not in _installed:
        sh = _Stderr()
        sh.setFormatter(logging.Formatter("%(message)s"))
        sh.setLevel(logging.WARNING)
        sh.addFilter(_Scope(stderr_scope))
        root.addHandler(sh)
        _installed["stderr"] = sh
    _hook_uncaught()
    logging.getLogger("thinkscope_gui").info("%s started (pid %d, argv %s)", command,
                                              os.getpid(), " ".join(sys.argv))
    return path


def _hook_uncaught() -> None:
    """Uncaught exceptions (main thread and others) go to the log with their traceback."""
    if getattr(sys.excepthook, "_thinkscope", False):
        return
    previous = sys.excepthook

    def hook(t: type[BaseException], e: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(t, KeyboardInterrupt):
            logging.getLogger("thinkscope_gui").error("uncaught exception",
                                                      exc_info=(t, e, tb))
        previous(t, e, tb)

    hook._thinkscope = True  # type: ignore[attr-defined]
    sys.excepthook = hook
    previous_thread = threading.excepthook

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        logging.getLogger("thinkscope_gui").error(
            "uncaught exception in thread %s", getattr(args.thread, "name", "?"),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]
        previous_thread(args)

    threading.excepthook = thread_hook


def report(logger: str, message: str, level: int = logging.ERROR) -> None:
    """A command's message for the person at the terminal (stderr) that also goes to the
    log file: printed directly, so it shows whatever logging setup a caller has."""
    print(message, file=sys.stderr, flush=True)
    logging.getLogger(logger).log(level, "%s", message, extra={"_reported": True})
