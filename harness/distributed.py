"""Scale-out under ``torchrun``: the process group, rank helpers, and the deterministic shard of a list.

``torchrun --nproc_per_node N -m harness.cli run SYSTEM`` starts N processes with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. :func:`init` joins them into one process group (nccl when
there is a GPU, each rank on GPU ``LOCAL_RANK``; gloo on the CPU) when ``WORLD_SIZE`` > 1, and does nothing otherwise,
so that the single-process path is untouched: every helper here answers as for one process (rank 0 of 1) when no
group is up.

What the harness shares out: the tracks a node predicts (:func:`shard`, a split fixed by the track list alone, so a
restarted rank finds its own unfinished tracks again) and, in kinds that support it, the training batches
(DistributedDataParallel). Rank 0 alone saves models, completes store nodes, records the leaderboard and writes
reports; :func:`barrier` holds the others until then.
"""

import heapq
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")

TIMEOUT_ENV = "ABAW_DIST_TIMEOUT_S"  # how long a rank waits for the others (rank 0 may fit a model alone meanwhile)
DEFAULT_TIMEOUT_S = 6 * 3600


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    """``RANK`` as torchrun sets it (0 when unset), known before the group is up."""
    return int(os.environ.get("RANK", "0"))


def _group_up() -> bool:
    if "torch" not in sys.modules:  # nothing imported torch: no group can be up (keeps light commands light)
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def init() -> bool:
    """Join the process group described by torchrun's environment when ``WORLD_SIZE`` > 1; True when one is up.

    Idempotent; a command that completes leaves it with :func:`finish`. The backend is nccl when CUDA is available
    (the rank's GPU is ``LOCAL_RANK``), else gloo; the timeout of every collective is ``$ABAW_DIST_TIMEOUT_S``
    (default 6 hours: the other ranks wait while rank 0 fits a kind that trains in one process)."""
    if env_world_size() <= 1:
        return False
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return True
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timeout)
    return True


def close() -> None:
    """Leave the process group (when one is up)."""
    if _group_up():
        import torch.distributed as dist

        dist.destroy_process_group()


def finish() -> None:
    """End a completed command: wait until every rank is done, then leave the group together.

    A rank whose part ended early (rank 0 still scoring and recording) and that left the group, or exited, while
    another still used it aborted now and then (SIGABRT, "terminate called without an active exception": 3 of 84
    runs of the two-rank tests before, 0 of 40 since; 2026-12-04), which torchrun reports as a failed run."""
    barrier()
    close()


def rank() -> int:
    """This process's rank in the group (0 without one)."""
    if not _group_up():
        return 0
    import torch.distributed as dist

    return dist.get_rank()


def world_size() -> int:
    """The number of processes in the group (1 without one)."""
    if not _group_up():
        return 1
    import torch.distributed as dist

    return dist.get_world_size()


def is_main() -> bool:
    """Whether this process is rank 0, the one that saves, records and reports."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (a no-op in one process)."""
    if _group_up():
        import torch.distributed as dist

        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Run the body on rank 0 first, then on the others (e.g. creating a shared file that the others then read)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object), on every rank."""
    if not _group_up():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if not _group_up():
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def shard(
    items: Sequence[T], weights: Sequence[float] | None = None, world: int | None = None, index: int | None = None
) -> list[T]:
    """This rank's share of ``items`` (in their order); every item lands on exactly one rank.

    The split depends on ``items`` and ``weights`` only, never on what is already done, so every rank computes the same
    split and a restarted rank gets the same share back. Without weights item *i* goes to rank *i* mod world; with
    weights (e.g. frame counts) the heaviest item goes first to the least loaded rank (ties: the lower rank), which
    balances the ranks' work. ``world`` and ``index`` default to this process's group.

    >>> shard(list("abcde"), world=2, index=1)
    ['b', 'd']
    >>> shard(["long", "mid", "short"], weights=[10, 6, 5], world=2, index=1)
    ['mid', 'short']
    """
    world = world_size() if world is None else world
    index = rank() if index is None else index
    if not 0 <= index < world:
        raise ValueError(f"shard: rank {index} is outside a world of {world} processes")
    if weights is None:
        return [item for i, item in enumerate(items) if i % world == index]
    if len(weights) != len(items):
        raise ValueError(f"shard: {len(weights)} weights for {len(items)} items; give one weight per item")
    loads = [(0.0, r) for r in range(world)]
    owner = [0] * len(items)
    for position in sorted(range(len(items)), key=lambda i: (-float(weights[i]), i)):
        load, chosen = heapq.heappop(loads)
        owner[position] = chosen
        heapq.heappush(loads, (load + float(weights[position]), chosen))
    return [item for item, who in zip(items, owner, strict=True) if who == index]


def deal(order: Sequence[T], world: int | None = None, index: int | None = None) -> list[T]:
    """This rank's share of one epoch's ``order``, as DistributedSampler deals it: the order padded by repeating its
    head to a multiple of ``world`` (every rank gets as many items: DistributedDataParallel needs equal step counts),
    then dealt round-robin, rank *r* taking positions *r*, *r* + world, …

    >>> deal([4, 0, 3, 1, 2], world=2, index=1)
    [0, 1, 4]
    """
    world = world_size() if world is None else world
    index = rank() if index is None else index
    order = list(order)
    padding = -len(order) % world
    order += (order * (padding // max(1, len(order)) + 1))[:padding]
    return order[index::world]


def epoch_order(n: int, seed: int, epoch: int, world: int | None = None, index: int | None = None) -> list[int]:
    """This rank's share (:func:`deal`) of a permutation of ``range(n)`` drawn from ``seed`` and ``epoch``."""
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return deal(order, world, index)


def wrap(module: Any) -> Any:
    """``module`` (already on its device) in DistributedDataParallel: on this rank's GPU, or on the CPU (gloo)."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    on_gpu = next(module.parameters()).is_cuda
    return DistributedDataParallel(module, device_ids=[torch.cuda.current_device()] if on_gpu else None)


def broadcast_buffers(module: Any) -> None:
    """Rank 0's buffers (BatchNorm statistics) into every rank's ``module``, so that all ranks evaluate one model."""
    if _group_up():
        import torch.distributed as dist

        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)
