"""What every command line of the project shares: bad input is one line naming the file and the field or
key, with exit status 2; a traceback only with ``--debug`` or ``CORRTRACK_DEBUG=1``.

Usage, for a ``main(argv) -> int`` whose parser accepts ``--debug``::

    @entry_point
    def main(argv: list[str] | None = None) -> int: ...

Inside, raise :class:`InputError` (or let ``OSError`` / ``ValueError`` and their kin through) with a message
that names the file and the field; ``entry_point`` prints ``error: <message>`` and returns 2. Any other
exception is reported as an internal error on one line (exit status 3). Warnings logged under the
``corrtrack`` logger go to stderr, one line each, while the command runs.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Callable

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

#: exception types that mean "the input is wrong" (files, values, formats) rather than a bug of ours
INPUT_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, LookupError, TypeError, UnicodeError,
                                                 EOFError)


class InputError(ValueError):
    """Bad input detected by a command; the message names the file and the field or key."""


def debug_requested(argv: list[str] | None = None) -> bool:
    """``--debug`` among the arguments, or ``CORRTRACK_DEBUG`` set to a true value."""
    args = sys.argv[1:] if argv is None else argv
    return "--debug" in args or os.environ.get("CORRTRACK_DEBUG", "").lower() in ("1", "true", "yes")


def one_line(exc: BaseException) -> str:
    """A one-line description of ``exc``: its message's last meaningful line (a DataLoader worker's error
    arrives wrapped in the worker's traceback; its last line is the original message)."""
    text = str(exc).strip()
    if "Traceback (most recent call last)" in text:
        last = [ln for ln in text.splitlines() if ln.strip()][-1].strip()
        head, sep, rest = last.partition(": ")
        text = rest if sep and "." in head and " " not in head else last
    if isinstance(exc, OSError) and exc.filename and exc.strerror:   # "[Errno 2] ...: 'f'" -> "f: ..."
        text = f"{exc.filename}: {exc.strerror}"
    if not text:
        text = type(exc).__name__
    return " ".join(text.split())


def report(exc: BaseException, stream=None) -> int:
    """Print ``exc`` as one line; the exit status for it (2 bad input, 3 internal error)."""
    stream = stream or sys.stderr
    if isinstance(exc, INPUT_ERRORS):
        print(f"error: {one_line(exc)}", file=stream)
        return EXIT_BAD_INPUT
    print(f"internal error: {type(exc).__name__}: {one_line(exc)} (rerun with --debug or CORRTRACK_DEBUG=1 "
          f"for the traceback)", file=stream)
    return EXIT_INTERNAL


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"warning: {' '.join(record.getMessage().split())}"


def entry_point(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Wrap a command's ``main(argv)``: see the module docstring."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        debug = debug_requested(argv)
        logger = logging.getLogger("corrtrack")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_OneLine())
        logger.addHandler(handler)
        level, propagate = logger.level, logger.propagate
        if logger.level == logging.NOTSET or logger.level > logging.WARNING:
            logger.setLevel(logging.WARNING)
        logger.propagate = False
        try:
            return main(argv)
        except KeyboardInterrupt:
            if debug:
                raise
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except SystemExit:
            raise
        except Exception as e:  # noqa: BLE001 -- the one place every error of a command is turned into a line
            if debug:
                raise
            return report(e)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate

    return wrapper
