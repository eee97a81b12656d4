"""The multi-machine path: jobs run on Celery workers with Redis as the broker
(`DECKGEN_QUEUE_URL=redis://host:6379/0`), the durable store still the source of truth.

The service sends a job's id to the broker; a worker claims that job in the store
atomically and runs its stages with the same JobRunner code as the in-process pool:
generation, then the Slides write once the principal's shared quota (in Redis) has a slot.
When it has none the task is retried when it will (a countdown, holding no worker thread)
while the generated deck waits in the store. Tasks are acknowledged late and re-delivered
if a worker dies; a redelivered or duplicated task finds the job finished or held and does
nothing, so each job still ends exactly once. A job whose deck another job is writing, or
whose batch is paused, is retried a little later.

Run workers with:  celery -A deckgen.tasks worker --pool threads --concurrency 4 -Q deckgen"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from celery import Celery

from deckgen.config import Config

TASK = "deckgen.run_job"
QUEUE = "deckgen"
RETRY_LATER = {"locked": 2.0, "paused": 10.0}  # seconds before a task tries its job again


def make_celery(url: str) -> Celery:
    celery = Celery("deckgen", broker=url)
    celery.conf.update(
        task_acks_late=True,  # a job's message is acknowledged once it has run ...
        task_reject_on_worker_lost=True,  # ... and re-delivered if its worker died
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
    )
    return celery


def dispatcher(url: str) -> Callable[[str], None]:
    celery = make_celery(url)

    def send(job_id: str) -> None:
        celery.send_task(TASK, args=[job_id], queue=QUEUE)

    return send


app = make_celery(os.environ.get("DECKGEN_QUEUE_URL") or "redis://127.0.0.1:6379/0")
_runner: Any = None


def runner() -> Any:
    """One JobRunner per worker process, built from the environment on first use."""
    global _runner
    if _runner is None:
        from deckgen.container import Container
        from deckgen.jobs import make_runner

        _runner = make_runner(Container.build(Config.from_env()))
    return _runner


@app.task(name=TASK, bind=True, max_retries=None)
def run_job(self: Any, job_id: str) -> str:
    outcome = runner().run_one(job_id)
    if isinstance(outcome, float):  # its write waits for a quota slot
        raise self.retry(countdown=max(outcome, 0.2))
    if outcome in RETRY_LATER:
        raise self.retry(countdown=RETRY_LATER[outcome])
    return outcome
