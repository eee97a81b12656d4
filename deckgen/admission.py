"""Admission of decks into generation by free section slots on the model routes.

A deck's sections finish unevenly, so a worker that generates one deck at a time leaves
a route's in-flight slots empty while the deck waits for its slowest section. Instead the
job runner lets the number of decks in generation grow and shrink: it takes another deck
whenever the routes have fewer sections ready for them than about one deck's worth beyond
their free slots, up to a ceiling. Sections then queue at each route's pacer (deckgen/llm/
limits.py), which hands a freed slot to the best waiting call (interactive before batch,
then first come), whatever deck it belongs to.

The counts come from two places: the router's own counts per route (calls in flight and
waiting, in this process; the model layer knows nothing of decks) and this module's count
of sections of admitted decks not yet finished."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from deckgen.llm.limits import RouteLoad

log = logging.getLogger("deckgen.jobs")


def default_ceiling(caps: Iterable[int], floor: int = 1) -> int:
    """Decks in generation at most, from the concurrency caps of the routes decks go to:
    their sum plus two. A deck in generation has at least one unfinished section; at worst
    every deck is down to its slowest one, so the sum of the caps fills every slot, one
    more keeps a deck's worth waiting, and the last is kept for a person's deck (see
    `Admission.room`). More would add threads and running jobs, not work the servers can
    take."""
    return max(sum(caps) + 2, floor)


class Admission:
    """Which decks are in generation, and whether the routes have room for one more."""

    def __init__(self, load: Callable[[], Mapping[str, RouteLoad]], ceiling: int,
                 deck_sections: int) -> None:
        self.load, self.ceiling = load, ceiling
        self.deck_sections = max(deck_sections, 1)  # sections of a whole deck
        self._lock = threading.Lock()
        self._left: dict[str, int] = {}  # admitted deck -> its sections not finished
        self._threads: set[threading.Thread] = set()  # one per deck in generation
        self.changed = threading.Event()  # set when a section or a deck finishes

    @property
    def decks(self) -> int:
        with self._lock:
            return len(self._left)

    def room(self, person: bool = False) -> bool:
        """Another deck may start. A person's deck: under the ceiling, whatever the routes'
        load (its sections go before batch sections there). A batch deck: under the ceiling
        less one deck kept for a person (when the ceiling is above one: a person's job is
        taken without waiting for a batch deck to end), and while the routes have fewer
        sections ready for them (waiting at their pacer, or on the way there) than one
        deck's worth beyond their free slots."""
        with self._lock:
            decks, sections = len(self._left), sum(self._left.values())
        if decks >= self.ceiling:
            return False
        if person or decks == 0:
            return True
        if decks >= self.ceiling - 1:  # the last deck is a person's
            return False
        loads = list(self.load().values())
        in_flight = sum(load.in_flight for load in loads)
        waiting = sum(load.waiting for load in loads)
        free = sum(max(load.concurrency - load.in_flight, 0) for load in loads)
        # sections of our decks not holding a slot: waiting, or being prepared and parsed
        ready = max(waiting, sections - in_flight)
        return ready < self.deck_sections + free

    def admit(self, job_id: str) -> None:
        """A deck was taken: counted as a whole deck until it says how many sections."""
        with self._lock:
            self._left[job_id] = self.deck_sections

    def sized(self, job_id: str, sections: int) -> None:
        """The deck's template was read: it generates `sections` sections."""
        with self._lock:
            if job_id in self._left:
                self._left[job_id] = sections
        self.changed.set()

    def section_done(self, job_id: str) -> None:
        with self._lock:
            if self._left.get(job_id, 0) > 0:
                self._left[job_id] -= 1
        self.changed.set()

    def ended(self, job_id: str) -> None:
        """The deck's generation stage is over (handed off, written, failed or cancelled)."""
        with self._lock:
            self._left.pop(job_id, None)
        self.changed.set()

    def start(self, job_id: str, generate: Callable[[], object]) -> None:
        """Generate an admitted deck in a thread of its own (the claiming worker goes on)."""
        def run() -> None:
            try:
                generate()
            except Exception:  # noqa: BLE001 - a deck thread must end, whatever went wrong
                # e.g. the store went away as the job finished: it keeps a stale heartbeat
                # and the sweep hands it out again once the store is back
                log.exception("job %s could not be finished; retrying later", job_id)
            finally:
                self.ended(job_id)
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"deckgen-deck-{job_id[-8:]}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: the sweep hands the job out again
            with self._lock:
                self._threads.discard(thread)
            self.ended(job_id)
            raise

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds in all for the decks in generation (at stop); one
        still going keeps its job's heartbeat until the process ends."""
        end = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(end - time.monotonic(), 0.0))
