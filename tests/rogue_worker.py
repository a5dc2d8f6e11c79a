"""A Celery worker that is not ragctl's, for the doctor's fault tests: the same broker and the
ingest queue, but none of ragctl's tasks and no result backend.

    REDIS_URL=redis://… python -m celery -A tests.rogue_worker worker -Q ingest --pool solo
"""

import os

from celery import Celery

app = Celery("rogue", broker=os.environ["REDIS_URL"])
app.conf.update(task_default_queue="ingest", broker_connection_retry_on_startup=True)
