"""corrtrack.cli: the one-line error contract every command line shares."""
from __future__ import annotations

import logging

import pytest

from corrtrack.cli import EXIT_BAD_INPUT, EXIT_INTERNAL, InputError, entry_point, one_line


def test_one_line_of_a_dataloader_worker_error_is_the_original_message():
    wrapped = OSError("Caught UnreadableDataError in DataLoader worker process 0.\nOriginal Traceback (most "
                      "recent call last):\n  File \"x.py\", line 3, in f\n    raise X\n"
                      "datamodules.sources.UnreadableDataError: 20 unreadable training images in a row: a.jpg\n")
    assert one_line(wrapped) == "20 unreadable training images in a row: a.jpg"
    assert one_line(FileNotFoundError(2, "No such file or directory", "/x/y.json")) == \
        "/x/y.json: No such file or directory"
    assert one_line(ValueError("two\n  lines")) == "two lines"
    assert one_line(KeyError()) == "KeyError"


def test_entry_point_exit_statuses_and_debug(capsys, monkeypatch):
    monkeypatch.delenv("CORRTRACK_DEBUG", raising=False)

    @entry_point
    def main(argv=None):
        kind = argv[0]
        if kind == "input":
            raise InputError("data.json: field 'x' is missing")
        if kind == "bug":
            raise ZeroDivisionError("division by zero")
        logging.getLogger("corrtrack.test").warning("a warning\nover two lines")
        return 0

    assert main(["input"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == "error: data.json: field 'x' is missing\n"
    assert main(["bug"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("internal error: ZeroDivisionError") and err.count("\n") == 1
    assert main(["ok"]) == 0
    assert capsys.readouterr().err == "warning: a warning over two lines\n"
    with pytest.raises(InputError):
        main(["input", "--debug"])
    monkeypatch.setenv("CORRTRACK_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["bug"])
