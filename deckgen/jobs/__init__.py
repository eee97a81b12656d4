"""Running jobs: a pool of worker threads in the service process (or Celery tasks, through
`run_one`) that takes jobs from the store in two stages, generation and writing, and
records every generation.

The store is the source of truth. A worker claims a job to generate (interactive jobs
before batch jobs, batch work round-robin between owners; never a deck another job has in
flight), heart-beats while it runs, and hands the generated deck back to the store. A
worker then claims a generated deck to write only when its principal's shared Slides quota
has a slot now (deckgen/quotas.py): no worker ever sleeps on a quota while holding work,
it takes other work instead. A process killed in the middle leaves its jobs with a stale
heartbeat; the next sweep puts one it was generating back in the queue and one it was
writing back to wait for its write, so every job ends exactly once. Writing a deck is
idempotent (it replaces tagged boxes), so running a stage again is safe.

A .pptx is written by the worker that generated it: no shared limit to wait for.

Decks in generation are as many as the model routes have room for (deckgen/admission.py),
each in a thread of its own, up to a ceiling whose last deck batch work leaves to a person;
a person's job is taken even when the routes are full, and its sections go before batch
sections at the route. Celery workers run one job per task.

The package: runner.py (JobRunner, the worker loop, claims, admission, the generation stage,
heartbeat and sweeper; make_runner), writes.py (the Slides write stage: claim, quota slot,
write, finish) and progress.py (what a job's record shows of its sections)."""

from deckgen.fill import SlidesAccess
from deckgen.jobs.progress import initial_progress, section_progress
from deckgen.jobs.runner import JobRunner, make_runner

__all__ = ["JobRunner", "SlidesAccess", "initial_progress", "make_runner", "section_progress"]
