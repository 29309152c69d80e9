"""Push progress for a terminal: one line per layer, redrawn in place."""

from __future__ import annotations

from typing import TextIO

from ..push.registry import LayerProgress


class TerminalProgress:
    """Draws one line per layer and redraws it in place as the push goes (for a terminal)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._rows: dict[str, int] = {}

    def __call__(self, event: LayerProgress) -> None:
        text = f"{event.layer}: {event.status} {event.bar}".rstrip()
        row = self._rows.get(event.layer)
        if row is None:
            self._rows[event.layer] = len(self._rows)
            self._stream.write(text + "\n")
        else:
            up = len(self._rows) - row
            self._stream.write(f"\x1b[{up}A\r\x1b[2K{text}\n")
            if up > 1:
                self._stream.write(f"\x1b[{up - 1}B")
        self._stream.flush()
