"""Turn a stream of token bytes into text, honouring stop strings.

Two problems a token loop must solve before text can go to a client:
a UTF-8 character may span tokens (decode incrementally), and a stop string may
span tokens (hold back any tail that could still become one).
"""

from __future__ import annotations

import codecs


class StopTextStream:
    """Feed token bytes; get back text that is safe to emit now."""

    def __init__(self, stops: list[str]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = [s for s in stops if s]
        self._held = ""  # text not yet emitted: may be the start of a stop string
        self.stopped = False

    def feed(self, data: bytes) -> str:
        """Returns text to emit; sets ``stopped`` when a stop string was completed."""
        self._held += self._decoder.decode(data)
        if not self._stops:
            out, self._held = self._held, ""
            return out
        # Earliest full stop-string match wins; the stop string itself is not emitted.
        cut = min((i for i in (self._held.find(s) for s in self._stops) if i >= 0),
                  default=-1)
        if cut >= 0:
            out, self._held = self._held[:cut], ""
            self.stopped = True
            return out
        keep = self._longest_stop_prefix_suffix()
        split = len(self._held) - keep
        out, self._held = self._held[:split], self._held[split:]
        return out

    def flush(self) -> str:
        """At the end of generation whatever was held back is plain text."""
        out = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return out

    def _longest_stop_prefix_suffix(self) -> int:
        """Length of the longest tail of held text that is a proper prefix of a stop."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(self._held)), best, -1):
                if self._held.endswith(stop[:n]):
                    best = n
                    break
        return best
