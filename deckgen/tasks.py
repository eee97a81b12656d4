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

Lanes hold on this path too: a person's job (no batch) is sent with priority 0, a batch job
with 5, and Redis serves the broker's priority lists in order (kombu's `priority_steps`), so
a worker that frees a thread takes the waiting person's job before any batch job; with
one message prefetched per thread, no worker hoards batch jobs ahead of it.

Run workers with:  celery -A deckgen.tasks worker --pool threads --concurrency 4 -Q deckgen"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from celery import Celery

from deckgen.config import Config

TASK = "deckgen.run_job"
QUEUE = "deckgen"
RETRY_LATER = {"locked": 2.0, "paused": 10.0}  # seconds before a task tries its job again
PRIORITY = {"interactive": 0, "batch": 5}  # Redis serves 0 first
log = logging.getLogger(__name__)


def make_celery(url: str) -> Celery:
    celery = Celery("deckgen", broker=url)
    celery.conf.update(
        task_acks_late=True,  # a job's message is acknowledged once it has run ...
        task_reject_on_worker_lost=True,  # ... and re-delivered if its worker died
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        # one Redis list per priority, read in priority order
        broker_transport_options={"priority_steps": list(range(10)), "sep": ":",
                                  "queue_order_strategy": "priority"},
    )
    return celery


def dispatcher(url: str, lane_of: Callable[[str], str] | None = None
               ) -> Callable[[str], None]:
    """`send(job_id)` for the service: the job goes to the broker with its lane's priority
    (`lane_of`, from the store; without it, or when the store cannot say, the batch one)."""
    celery = make_celery(url)

    def send(job_id: str) -> None:
        lane = "batch"
        if lane_of is not None:
            try:
                lane = lane_of(job_id)
            except Exception:  # noqa: BLE001 - a job sent late beats a job not sent
                log.warning("no lane for job %s; sent with batch priority", job_id)
        celery.send_task(TASK, args=[job_id], queue=QUEUE, priority=PRIORITY[lane])

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
    priority = (self.request.delivery_info or {}).get("priority")  # its lane's, kept
    if isinstance(outcome, float):  # its write waits for a quota slot
        raise self.retry(countdown=max(outcome, 0.2), priority=priority)
    if outcome in RETRY_LATER:
        raise self.retry(countdown=RETRY_LATER[outcome], priority=priority)
    return outcome
