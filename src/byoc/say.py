"""The one callback type through which the library reports progress, and its silent default.

Library functions take ``say: Say = quiet`` (or ``log``) and never print: the
CLI passes a function that writes to stderr, a program passes its own logger.
Log lines of a container or a host go through
:data:`byoc.backends.base.LogSink`, which also names the source.
"""

from __future__ import annotations

from collections.abc import Callable

#: Receives one line of progress, without a newline.
Say = Callable[[str], None]


def quiet(message: str) -> None:
    """Say nothing: the default of every library function."""
