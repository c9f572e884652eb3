"""Joining a Ray cluster, or starting one on this machine for the length of a run."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from workbench.errors import WorkbenchError

MAX_WORKERS = 256
CONNECT_SECONDS = 5.0
ADDRESS_FORM = "give HOST:PORT of the cluster's head (the port `ray start --head --port` was given)"


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT, checked before Ray sees it: Ray waits a long time on an address it cannot use."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise WorkbenchError(f"--address {address!r}: {ADDRESS_FORM}")
    return host.strip("[]"), int(port)


def check_reachable(address: str) -> None:
    """One line, at once, when nothing listens at `address`, instead of Ray's minute of retries."""
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_SECONDS):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise WorkbenchError(f"cannot reach a Ray cluster at {address} ({reason}); start one with `ray start "
                             "--head --port PORT`, or leave out --address to run on this machine") from None


def check_workers(workers: int | None) -> int | None:
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise WorkbenchError(f"--workers must be from 1 to {MAX_WORKERS}, got {workers}")
    return workers


ADDRESS_VARIABLE = "WORKBENCH_RAY_ADDRESS"  # the UI's sweeps run on this cluster when it is set


def address_from_environment() -> str | None:
    return os.environ.get(ADDRESS_VARIABLE, "").strip() or None


def connect(address: str | None) -> bool:
    """Connect this process to Ray: the cluster at `address`, or a local one with this
    machine's cores. Returns whether this call started the connection (a process already
    connected, such as the UI after its first sweep, keeps its Ray)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline always: no usage report
    import ray

    if address:
        check_reachable(address)
    if ray.is_initialized():
        return False
    options = {"log_to_driver": False, "logging_level": logging.ERROR, "include_dashboard": False}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise WorkbenchError(f"cannot start {where}: {_first_line(error)}") from None
    return True


@contextmanager
def ray_runtime(address: str | None) -> Iterator[None]:
    """Ray for the block (see `connect`); a connection made here ends with the block."""
    started = connect(address)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def worker_shape(resources: dict[str, float], requested: int | None) -> tuple[int, dict[str, float]]:
    """How many workers, and what each reserves: one GPU each where the cluster has GPUs (the
    base then loads on it), else one CPU each. Never more than the cluster holds: an actor
    that cannot be placed would wait forever."""
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if gpus:
        return min(requested or gpus, gpus), {"num_cpus": 1, "num_gpus": 1}
    return min(requested or cpus, cpus), {"num_cpus": 1}


def cluster_resources() -> dict[str, float]:
    import ray

    return dict(ray.cluster_resources())


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
