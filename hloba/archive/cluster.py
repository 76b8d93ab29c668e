"""Dask for decoding: a local cluster sized by the rule's threads, or the user's scheduler."""

from __future__ import annotations

import contextlib
import logging

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(workers: int = 1, scheduler_address: str | None = None, memory_limit: str = "auto"):
    """Yield a ``distributed.Client``: connected to ``scheduler_address`` when given (a dask
    cluster of the user's, e.g. dask-jobqueue on SLURM), else a ``LocalCluster`` of ``workers``
    single-threaded processes (call it under ``if __name__ == "__main__":`` in scripts).
    ``workers = 0`` yields ``None``: decode in this process."""
    from distributed import Client, LocalCluster

    if scheduler_address:
        log.info("connecting to the dask scheduler at %s", scheduler_address)
        with Client(scheduler_address) as client:
            yield client
        return
    if workers <= 0:
        yield None
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        log.info("local dask cluster: %d worker processes", workers)
        yield client
