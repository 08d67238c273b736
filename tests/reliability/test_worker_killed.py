"""A Celery worker is killed mid-task (issue 7): the task is re-delivered to a new worker and, being
idempotent, finishes the job without submitting anything twice.

The kill lands in the worst window: the emulator has stored the batch but the worker has not yet
recorded its id (`batch_create_latency_ms` holds the response back).
"""

import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import redis
from celery import Celery

from apps.llm.clients import get_client
from apps.llm.models import LLMCall
from apps.triage import services
from apps.triage.models import ClassificationBatch, TranscriptClassification
from tests.conftest import received_requests, set_faults
from tests.reliability.conftest import PROJECT_DIR, server_env, stop_process
from tests.triage.factories import BILLING_TURNS, UNRESOLVED_TURNS, classifier_version, conversation_on

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

DAY = date(2026, 3, 10)
CONVERSATIONS = 6
BROKER_DB_SUFFIX = "/12"
TASK = "apps.triage.tasks.submit_nightly_classification"


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "supportbot",
            "worker",
            "-P",
            "solo",
            "-l",
            "info",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=PROJECT_DIR,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def batch_create_received(upstream) -> bool:
    return any(
        r.get("path") == "/v1/messages/batches" and r.get("method") == "POST"
        for r in received_requests(upstream, limit=100)
    )


def test_a_killed_worker_s_task_is_redelivered_and_submits_once(llm_upstream, redis_url, tmp_path, settings) -> None:
    classifier_version()
    for index in range(CONVERSATIONS):
        conversation_on(DAY, BILLING_TURNS if index % 2 else UNRESOLVED_TURNS)
    broker = redis_url.rsplit("/", 1)[0] + BROKER_DB_SUFFIX
    redis.Redis.from_url(broker).flushdb()
    env = server_env(
        llm_upstream.base_url,
        REDIS_URL=broker,
        CELERY_VISIBILITY_TIMEOUT_SECONDS="3",  # re-deliver quickly for the test
        TRIAGE_SUBMIT_GRACE_SECONDS="0",
    )
    set_faults(llm_upstream, {"batch_processing_seconds": 0, "batch_create_latency_ms": 5000})

    first = start_worker(env, tmp_path / "worker-1.log")
    workers = [first]
    try:
        task_id = Celery("probe", broker=broker).send_task(TASK, kwargs={"for_date": DAY.isoformat()}).id
        wait_for(lambda: batch_create_received(llm_upstream), 60, "the worker to send the batch")
        first.send_signal(signal.SIGKILL)  # mid-task: the batch exists upstream, its id is not recorded
        first.wait(timeout=10)
        assert ClassificationBatch.objects.get().anthropic_batch_id is None

        set_faults(llm_upstream, {"batch_processing_seconds": 0})
        second_log = tmp_path / "worker-2.log"
        workers.append(start_worker(env, second_log))
        # The unacknowledged task comes back once the visibility timeout passes, and runs again.
        wait_for(lambda: f"{TASK}[{task_id}] succeeded" in second_log.read_text(), 60, "the task to be re-delivered")
    finally:
        for worker in workers:
            stop_process(worker)

    # The re-run sent nothing new; the periodic poll adopts the orphaned upstream batch and ingests it.
    settings.TRIAGE_SUBMIT_GRACE_SECONDS = 0
    for _ in range(3):
        services.batches_poll_open()

    assert len(list(get_client().messages.batches.list(limit=100))) == 1  # submitted once
    assert TranscriptClassification.objects.filter(status="classified").count() == CONVERSATIONS
    assert LLMCall.objects.filter(is_batch=True).count() == CONVERSATIONS  # counted once
