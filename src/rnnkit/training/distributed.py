"""Training in several processes: torchrun's environment, the process group, DDP, devices and
precision. The trainer (:mod:`rnnkit.training.loop`) is the only caller; tasks only
learn their rank through ``shard(rank, world_size)`` (see ``docs/distributed.md``).

A process belongs to a *group* of ``world_size`` ranks. torchrun (or ``--nproc``, which starts the
same workers through torch's elastic launcher, :mod:`rnnkit.training.launch`) sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; without them the group is this process alone and nothing here
communicates. Backends: gloo on the CPU, nccl on CUDA (one device per local rank).

Every rank runs the same steps on its share of the global batch; per step the ranks exchange one
small vector (:meth:`Group.agree`: tokens, loss, stop requests, rank 0's clock), so that they
weight their losses by tokens, log the global loss and stop at the same step, and DDP averages
the gradients during ``backward``.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from rnnkit.errors import ConfigError
from rnnkit.training.config import Runtime

logger = logging.getLogger(__name__)

T = TypeVar("T")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def launch_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment; ``(0, 1, 0)`` without it."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    raw = [os.environ.get(name) for name in names]
    if raw[1] is None:
        return 0, 1, 0
    try:
        rank, world, local = (int(v if v is not None else 0) for v in raw)
    except ValueError:
        given = ", ".join(f"{n}={v}" for n, v in zip(names, raw, strict=True))
        message = f"torchrun's environment is malformed ({given}); launch with torchrun"
        raise ConfigError(message) from None
    if not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={world}; launch with torchrun")
    return rank, world, local


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """The device ``--device name`` means for the process of ``local_rank``.

    Raises:
        ConfigError: the device is not there (one line naming what to pass instead).
    """
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available() and "WORLD_SIZE" not in os.environ:
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device cuda: this torch ({torch.__version__}) sees no CUDA device; "
                "pass --device cpu (or auto), or install a CUDA build of torch"
            )
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"local rank {local_rank} has no GPU (this machine has "
                f"{torch.cuda.device_count()}); start at most that many processes per machine"
            )
        return torch.device("cuda", local_rank)
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps: no Apple GPU (MPS) is available; pass --device cpu")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> None:
    """Raise :class:`ConfigError` unless ``device`` can train in ``precision``."""
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("--precision fp16 needs a GPU; on the CPU use --precision bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16; "
            "use --precision fp16 or fp32"
        )


def nearest_multiples(total: int, world: int) -> list[int]:
    """The multiples of ``world`` nearest to ``total`` (at most two, both >= world)."""
    below = (total // world) * world
    return sorted({m for m in (below, below + world) if m >= world})


def nearest_divisors(total: int, world: int) -> list[int]:
    """The divisors of ``total`` nearest to ``world`` (one below, one above where they exist)."""
    divisors = [d for d in range(1, total + 1) if total % d == 0]
    below = [d for d in divisors if d < world]
    above = [d for d in divisors if d > world]
    return ([below[-1]] if below else []) + ([above[0]] if above else [])


def check_divides(batch_size: int, world: int) -> int:
    """Each rank's share of a global batch of ``batch_size``.

    Raises:
        ConfigError: ``world`` does not divide ``batch_size`` (naming the nearest valid sizes).
    """
    if batch_size % world == 0:
        return batch_size // world
    sizes = " or ".join(str(m) for m in nearest_multiples(batch_size, world))
    procs = " or ".join(str(d) for d in nearest_divisors(batch_size, world))
    raise ConfigError(
        f"--batch-size {batch_size} (the global batch) does not split evenly over {world} "
        f"processes; use --batch-size {sizes}, or {procs} processes"
    )


def check_world(world_size: int, count: int, what: str) -> None:
    """Raise :class:`ConfigError` when ``world_size`` ranks exceed the ``count`` training
    examples (``what``: their name, plural) that global batches are made of."""
    if world_size > count:
        raise ConfigError(f"{world_size} processes but only {count} {what}; use at most {count}")


def rank_rows(rows: Sequence[T], rank: int, world_size: int) -> tuple[list[T], bool]:
    """This rank's rows of a global batch (the distributed sampler: rows ``rank``,
    ``rank + world_size``, ...) and whether they count. When the batch has fewer rows than
    ranks (the last of an epoch), a rank left without one gets the first row as a stand-in whose
    loss weighs 0 (its task returns 0 tokens), so every rank still takes part in the step."""
    mine = list(rows[rank::world_size])
    return (mine, True) if mine else (list(rows[:1]), False)


@contextlib.contextmanager
def rank_zero_first() -> Iterator[None]:
    """Rank 0 runs the block first, the other ranks after it (a no-op alone): preparing data
    into a shared cache (synthesis, downloads) is done once, and the others then read it. When
    the block fails on rank 0 (bad data), the others still go on and meet the error themselves
    (printed once: :func:`reported_by_rank_zero`) instead of a broken collective."""
    import torch.distributed as dist

    together = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if together and dist.get_rank() != 0:
        dist.barrier()
    try:
        yield
    finally:
        if together and dist.get_rank() == 0:
            with contextlib.suppress(RuntimeError):  # another rank is gone: the launcher ends all
                dist.barrier()


def check_runtime(runtime: Runtime, *, world_size: int, batch_size: int | None = None) -> None:
    """Everything about ``runtime`` that can be checked before any data is read or any run
    directory made: the device, the precision, and that ``world_size`` splits ``batch_size``."""
    check_precision(runtime.precision, pick_device(runtime.device, launch_env()[2]))
    if batch_size is not None:
        check_divides(batch_size, world_size)


def to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` (a tensor, or tuples, lists, dicts and dataclasses of them) on ``device``."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (tuple, list)):
        moved = [to_device(x, device) for x in obj]
        return type(obj)(*moved) if hasattr(obj, "_fields") else type(obj)(moved)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: to_device(getattr(obj, f.name), device) for f in dataclasses.fields(obj)}
        return dataclasses.replace(obj, **changes)
    return obj


def place(model: nn.Module, runtime: Runtime | None = None) -> Group:
    """``model`` moved to ``runtime``'s device, for work in one process (evaluation, decoding);
    returns its place: ``.device`` for the inputs, ``.autocast()`` for the precision
    (``runtime`` None: the CPU in fp32)."""
    where = Group(runtime or Runtime(device="cpu"))
    model.to(where.device)
    return where


class TaskStep(nn.Module):
    """The task's loss as a module, so that DistributedDataParallel wraps the whole step
    (tasks call ``model.loss(...)`` or other methods, which DDP alone would not see)."""

    def __init__(self, model: nn.Module, task: Any) -> None:
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, batch: Any, carry: Any) -> tuple[Tensor, int, Any]:
        return self.task.train_loss(self.model, batch, carry)


class Group:
    """This process's place in a training launch (a group of one without torchrun).

    Args:
        runtime: device, precision and collective timeout.
        rank, world_size, local_rank: from :func:`launch_env`.
    """

    def __init__(self, runtime: Runtime, rank: int = 0, world_size: int = 1, local_rank: int = 0):
        self.runtime = runtime
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device = pick_device(runtime.device, local_rank)
        check_precision(runtime.precision, self.device)
        self.writer = rank == 0  # only rank 0 writes files, logs and prints
        self.started = False  # whether this object initialized torch's process group

    # ----------------------------------------------------------------- process group
    def start(self) -> Group:
        """Join torch's process group (gloo on the CPU, nccl on CUDA) unless alone."""
        import torch.distributed as dist

        if self.world_size == 1 or dist.is_initialized():
            return self
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_process_group(
            backend, rank=self.rank, world_size=self.world_size,
            timeout=timedelta(seconds=self.runtime.timeout_s),
        )  # fmt: skip
        self.started = True
        logger.info("rank %d of %d joined (%s, %s)", self.rank, self.world_size, backend,
                    self.device)  # fmt: skip
        return self

    def close(self) -> None:
        """Leave the process group if :meth:`start` joined it."""
        if self.started:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.started = False

    # ----------------------------------------------------------------- collectives
    def wrap(self, step: TaskStep) -> nn.Module:
        """``step`` ready to train on this rank: as it is when alone; under
        :class:`SharedMemoryDataParallel` when every rank is a CPU process on this machine (and
        ``runtime.gradient_sync`` is "auto"); else under DistributedDataParallel. The trainer
        calls ``average_gradients()`` after backward where the module has it."""
        if self.world_size == 1:
            return step
        if self.runtime.gradient_sync == "auto" and self.device.type == "cpu":
            shared = shared_region(step, self)
            if shared is not None:
                return SharedMemoryDataParallel(step, *shared)
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(step, device_ids=ids)

    def agree(self, values: list[float]) -> list[float]:
        """The sum over ranks of each value (float64; the values themselves when alone)."""
        if self.world_size == 1:
            return values
        import torch.distributed as dist

        vector = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(vector)
        return vector.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (``[obj]`` when alone)."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        """Wait until every rank is here (a no-op when alone)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    # ----------------------------------------------------------------- precision
    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to the runtime's precision (nothing for fp32)."""
        dtype = AUTOCAST_DTYPES.get(self.runtime.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def grad_scaler(self) -> Any:
        """A gradient scaler for fp16 on CUDA (None otherwise: bf16 and fp32 need none)."""
        if self.runtime.precision == "fp16" and self.device.type == "cuda":
            return torch.amp.GradScaler("cuda")
        return None


def _trained(module: nn.Module) -> list[Tensor]:
    return [p for p in module.parameters() if p.requires_grad]


def shared_region(step: nn.Module, group: Group) -> tuple[Tensor, str] | None:
    """A ``(2, world_size, n)`` tensor in memory that every rank of ``group`` maps, and the name
    its file had, for :class:`SharedMemoryDataParallel` (``n``: the trained weights' elements
    plus one flag per weight); None where the ranks cannot share memory (another machine, mixed
    dtypes), and DDP is used instead. Every rank calls this.

    Rank 0 makes a file in ``/dev/shm`` (else the temporary directory), every rank maps it, and
    rank 0 deletes its name as soon as all have: the memory lives exactly as long as the
    processes that map it, so nothing is left behind however the run ends. A value rank 0
    writes must be seen by every rank, or none uses the region."""
    import torch.distributed as dist

    params = _trained(step)
    dtypes = {p.dtype for p in params}
    usable = len(dtypes) == 1 and all(p.device.type == "cpu" for p in params)
    dtype = dtypes.pop() if usable else torch.float32
    numel = 2 * group.world_size * (sum(p.numel() for p in params) + len(params))
    path = None
    if group.rank == 0 and usable:
        path = _region_file(numel * dtype.itemsize)
    shared: list[Any] = [path]
    dist.broadcast_object_list(shared, src=0)
    path = shared[0]
    region = None
    try:
        if path is not None:
            try:
                region = torch.from_file(path, shared=True, size=numel, dtype=dtype)
            except (OSError, RuntimeError) as e:  # another machine: no such file
                logger.info("rank %d cannot map %s (%s); using DDP", group.rank, path, e)
        token = torch.tensor([1.0 + os.getpid() % 9973], dtype=torch.float64)
        dist.broadcast(token, src=0)  # rank 0's, written by it and looked for by all
        if region is not None and group.rank == 0:
            region[0] = float(token)
        group.barrier()
        seen = region is not None and float(region[0]) == float(token)
        agreed = torch.tensor([int(seen)], dtype=torch.int32)
        dist.all_reduce(agreed, op=dist.ReduceOp.MIN)  # (after every rank has looked)
    finally:
        if group.rank == 0 and path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
    if not int(agreed[0]):
        return None
    region.zero_()
    return region.view(2, group.world_size, -1), path


def _region_file(nbytes: int) -> str | None:
    """A new file of ``nbytes`` bytes in ``/dev/shm`` (else the temporary directory), its
    space reserved, so that writing into the mapping cannot fail later (a full tmpfs kills a
    process that writes to a mapped page it cannot back); None where that fails."""
    import tempfile

    folder = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    path = None
    try:
        fd, path = tempfile.mkstemp(prefix="rnnkit-gradients-", dir=folder)
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, nbytes)
            else:  # (macOS) the space is checked instead of reserved
                free = os.statvfs(folder)
                if free.f_bavail * free.f_frsize < 2 * nbytes:
                    raise OSError(f"less than {2 * nbytes} bytes free in {folder}")
                os.ftruncate(fd, nbytes)
        finally:
            os.close(fd)
    except OSError as e:
        logger.info("no shared memory for the gradients (%s); using DDP", e)
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return None
    return path


class SharedMemoryDataParallel(nn.Module):
    """Data parallelism among CPU processes on one machine, the gradients averaged through
    shared memory (what :meth:`Group.wrap` chooses there; DistributedDataParallel elsewhere).

    DDP sends the gradients through gloo's TCP loopback; here each rank copies its gradients
    into its row of a region every rank maps (:func:`shared_region`), the ranks meet at one
    barrier, and each sums the rows itself. Two regions alternate, so that a rank writing the
    next step's gradients never overwrites a row another rank is still reading: reaching the
    next barrier means having read the last region. As DDP does, the constructor gives every
    rank rank 0's weights and buffers, and each forward rank 0's buffers (batch-norm
    statistics). A weight without a gradient on every rank keeps none (as alone); one with a
    gradient on some rank gets the average, counting zeros for the others.

    Call :meth:`average_gradients` after ``backward`` on every rank, every step.
    """

    def __init__(self, module: nn.Module, region: Tensor, path: str = "") -> None:
        import torch.distributed as dist

        super().__init__()
        self.module = module
        self.region = region  # (2, world_size, n): gradients, then one flag per weight
        self.path = path  # the name its file had (deleted once mapped)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.params = _trained(module)
        ends = torch.tensor([p.numel() for p in self.params]).cumsum(0).tolist()
        self.spans = list(zip([0, *ends[:-1]], ends, strict=True))  # each weight's elements
        self.total = ends[-1] if ends else 0
        self.average = torch.empty(region.shape[-1], dtype=region.dtype)
        self.calls = 0
        self.synced = list(module.buffers())  # rank 0's, before every forward
        with torch.no_grad():
            for t in [*module.parameters(), *self.synced]:
                dist.broadcast(t, src=0)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        import torch.distributed as dist

        for b in self.synced:
            dist.broadcast(b, src=0)
        return self.module(*args, **kwargs)

    def average_gradients(self) -> None:
        """Replace every rank's gradients by their mean over the ranks."""
        import torch.distributed as dist

        region = self.region[self.calls % 2]
        self.calls += 1
        mine, flags = region[self.rank, : self.total], region[self.rank, self.total :]
        for i, (p, (a, b)) in enumerate(zip(self.params, self.spans, strict=True)):
            if p.grad is None:
                mine[a:b].zero_()
            else:
                mine[a:b].copy_(p.grad.reshape(-1))
            flags[i] = p.grad is not None
        dist.barrier()
        torch.sum(region, 0, out=self.average)
        grads, present = self.average[: self.total], self.average[self.total :]
        grads /= self.world_size
        for i, (p, (a, b)) in enumerate(zip(self.params, self.spans, strict=True)):
            if present[i] > 0:
                mean = grads[a:b].view_as(p)
                if p.grad is None:
                    p.grad = mean.clone()
                else:
                    p.grad.copy_(mean)


REPORT_WAIT_S = 10.0  # how long a rank waits to learn whether rank 0 reports the same error


def _launch_store(timeout_s: float) -> Any:
    """The key-value store of this launch (torchrun's agent hosts it, or rank 0's process group
    does once joined), under rnnkit's own prefix; None where there is none to reach."""
    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_s)
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                              is_master=False, timeout=timeout)  # fmt: skip
    elif dist.is_initialized():
        store = dist.distributed_c10d._get_default_store()
    else:
        return None
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"rnnkit/report/{attempt}", store)


def reported_by_rank_zero(
    line: str, *, echo: bool = True, wait_s: float = REPORT_WAIT_S
) -> bool:  # fmt: skip
    """Under a launch of several ranks, whether rank 0 prints ``line`` itself, so that this
    rank need not: an error every rank meets (bad data found after the launch) is then printed
    once. Rank 0 posts its line to the launch's store and answers False (it prints); another
    rank waits up to ``wait_s`` seconds for rank 0's line and answers whether it is the same
    (an error of its own, or a store out of reach, is printed by the rank that met it).
    ``echo=False``: the line is rank 0's alone (other ranks answer True at once)."""
    try:
        rank, world, _ = launch_env()
    except ConfigError:
        return False
    if world == 1:
        return False
    if rank != 0 and not echo:
        return True
    try:
        store = _launch_store(wait_s)
        if store is None:
            return False
        if rank == 0:
            store.set("0", line)
            return False
        store.wait(["0"], timedelta(seconds=wait_s))
        return store.get("0").decode() == line
    except Exception:  # noqa: BLE001 (no store, or rank 0 never said anything: print)
        logger.info("rank %d could not learn rank 0's report; printing its own", rank)
        return False


def join_launch(runtime: Runtime) -> None:
    """Join torchrun's process group for the rest of this process (the command line, before
    any data is read), so that every rank checks the run directory before rank 0 makes it."""
    rank, world, local = launch_env()
    group = Group(runtime, rank, world, local).start()
    atexit.register(group.close)


@contextlib.contextmanager
def join(runtime: Runtime | None = None) -> Iterator[Group]:
    """This process's :class:`Group` from torchrun's environment, joined for the duration
    (``runtime`` None: the CPU in fp32, for tasks whose data do not follow the model's device)."""
    rank, world, local = launch_env()
    group = Group(runtime or Runtime(device="cpu"), rank, world, local).start()
    try:
        yield group
    finally:
        group.close()
