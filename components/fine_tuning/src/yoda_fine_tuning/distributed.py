"""Data-parallel fine-tuning: ``--accelerator-count N`` starts N ranks of this step with PyTorch's
process launcher (``torch.distributed.elastic.multiprocessing``, what ``torchrun`` runs its
workers with), each holding the base model on its own device while DDP averages the LoRA
gradients; on a CPU, N gloo processes. The ranks meet through a file, not a port, and talk over
the loopback interface: one machine, nothing listening beyond it.

Who writes what:
- the launching process checks and marks the outputs, as a single process does, removes them if
  any rank fails, and writes the ExecutorOutput;
- rank 0 alone writes the adapter, the metrics, the TensorBoard files and the checkpoints (each
  rank adds its RNG state to a checkpoint, as the Trainer does);
- the other ranks only train.
The ranks hand rank 0's result, and any rank's error line, back through a folder of the
launcher's (:data:`EXCHANGE_VARIABLE`).

The per-device batch stays as given: the effective batch is ``per_device_train_batch_size`` times
N, an epoch takes N times fewer optimizer steps, and the learning rate is kept.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from yoda_fine_tuning.callbacks import RecipeError
from yoda_step_io import BadValueError, StepError

logger = logging.getLogger(__name__)

#: Set for the ranks by their launcher: the folder they report through, and its process id.
EXCHANGE_VARIABLE = "YODA_RANK_EXCHANGE"
LAUNCHER_VARIABLE = "YODA_RANK_LAUNCHER"
RESULT_FILE = "result.json"
#: The file through which the ranks meet (torch's FileStore), in the launcher's folder.
STORE_FILE = "store"
#: The network interface the ranks talk over: one machine's loopback.
LOOPBACK = "lo"
#: How long a rank waits for the others at a collective. A rank that dies is seen by the
#: launcher at once; one that hangs fails the step after this instead of holding the GPUs.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks; the defaults: a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    exchange: Path | None = None  # the launcher's folder; None: not launched as a rank

    @property
    def main(self) -> bool:
        """Whether this process writes the outputs (rank 0, or the single process)."""
        return self.rank == 0


#: A single process: the default of every step function that takes ranks.
SINGLE = Ranks()


def this_process(environ: Mapping[str, str] = os.environ) -> Ranks:
    """The ranks as the launcher set them in the environment; a single process otherwise."""
    exchange = environ.get(EXCHANGE_VARIABLE)
    if not exchange:
        return Ranks()
    rank, size, local = (int(environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    return Ranks(rank, size, local, Path(exchange))


def check_gpus(count: int, cuda_devices: int) -> None:
    """Raises :class:`BadValueError` for more ranks than this machine has GPUs (with CUDA)."""
    if cuda_devices and count > cuda_devices:
        raise BadValueError(
            "--accelerator-count", count, f"this machine has {cuda_devices} CUDA GPU(s): ask for "
            "at most that many (on Vertex AI: set_accelerator_limit gives the task N GPUs)",
        )  # fmt: skip


def rank_argv(argv: Sequence[str]) -> list[str]:
    """The launcher's flags for its ranks, less ``--executor-input`` (the launcher reports)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--executor-input":
            skip = True
        elif not arg.startswith("--executor-input="):
            kept.append(arg)
    return kept


def launch(argv: Sequence[str], count: int, exchange: Path, *, cuda: bool) -> dict[str, Any]:
    """Run ``count`` ranks of ``python -m yoda_fine_tuning argv`` on this machine with PyTorch's
    process launcher and wait for all of them; rank 0's result.

    One machine needs no rendezvous service: the ranks meet through a file in ``exchange``
    (torch's FileStore), so no port is opened for it, and gloo or NCCL connect the ranks over
    the loopback interface alone.

    Raises:
        StepError: the launcher is missing, or a rank failed: the first one, named, with its
            error line or how it died (the launcher stops the others at once).
    """
    try:
        from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, start_processes
        from torch.distributed.elastic.multiprocessing.api import SignalException
    except ImportError as error:
        raise StepError(
            f"PyTorch's launcher (torch.distributed) is missing here ({error}): install a torch "
            "build with torch.distributed, or pass --accelerator-count 1"
        ) from error
    shared = {
        EXCHANGE_VARIABLE: str(exchange),
        LAUNCHER_VARIABLE: str(os.getpid()),
        "WORLD_SIZE": str(count),
        "LOCAL_WORLD_SIZE": str(count),
        "GLOO_SOCKET_IFNAME": LOOPBACK,
        "NCCL_SOCKET_IFNAME": LOOPBACK,
    }
    if not cuda and "OMP_NUM_THREADS" not in os.environ:  # the CPU's cores, shared out
        shared["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // count))
    logger.info("starting %d ranks (%s)", count, "nccl" if cuda else "gloo, on the CPU")
    ranks = start_processes(
        name="yoda-fine-tuning",
        entrypoint=sys.executable,
        args={rank: ("-m", "yoda_fine_tuning", *rank_argv(argv)) for rank in range(count)},
        envs={
            rank: {**shared, "RANK": str(rank), "LOCAL_RANK": str(rank)} for rank in range(count)
        },
        logs_specs=DefaultLogsSpecs(log_dir=str(exchange / "logs")),
    )
    try:
        result = ranks.wait(period=0.5)  # until all are done, or one failed: the rest stopped
    except SignalException as error:  # the task cancelled or preempted: the ranks are stopped
        raise StepError(
            f"fine-tuning stopped by {error.sigval.name}, its {count} ranks with it: a retry "
            "resumes from the last checkpoint"
        ) from None
    finally:
        ranks.close()
    if result is not None and result.is_failed():
        failures = {rank: failure.exitcode for rank, failure in result.failures.items()}
        rank = root_cause(failures, {rank: _said(exchange, rank) for rank in failures})
        said = _said(exchange, rank)
        failed = RecipeError if said and said[0] == "recipe" else StepError
        raise failed(
            f"fine-tuning rank {rank} of {count} failed: "
            f"{said[1] if said else _death(failures[rank])}"
        )
    loaded: dict[str, Any] = json.loads((exchange / RESULT_FILE).read_text(encoding="utf-8"))
    return loaded


def root_cause(exitcodes: Mapping[int, int], said: Mapping[int, tuple[str, str] | None]) -> int:
    """The rank whose failure the others' follow from, the lowest of: one killed from outside,
    else one with an error line of the step's, else one that ended without a word, else one
    that raised (a rank that loses its peer raises too), else one the launcher stopped."""
    import signal

    def order(rank: int) -> int:
        code, words = exitcodes[rank], said.get(rank)
        if words is not None:
            return 1 if words[0] in ("step", "recipe") else 3
        if code == -signal.SIGTERM:
            return 4
        return 0 if code < 0 else 2

    return min(exitcodes, key=lambda rank: (order(rank), rank))


def _death(exitcode: int) -> str:
    if exitcode < 0:
        import signal

        return f"it was killed by {signal.Signals(-exitcode).name}"
    return f"it exited with status {exitcode} (its log above says why)"


def _said(exchange: Path, rank: int) -> tuple[str, str] | None:
    """(``step`` or ``exception``, the line) a rank left, if any."""
    path = exchange / f"rank-{rank}.error"
    if not path.is_file():
        return None
    kind, _, line = path.read_text(encoding="utf-8").strip().partition(" ")
    return kind, line


def die_with_launcher(environ: Mapping[str, str] = os.environ) -> None:
    """End this rank when its launcher ends. The launcher starts each rank in a session of its
    own, so a killed launcher (the OOM killer, a cancelled task) would leave its ranks training
    on, writing outputs and removing checkpoints under the retry's feet. On Linux the kernel
    kills the rank (``PR_SET_PDEATHSIG``); a launcher already gone ends it here."""
    launcher = environ.get(LAUNCHER_VARIABLE)
    if launcher is None or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != int(launcher):
        os._exit(1)  # the launcher died before the request took hold


def report_error(ranks: Ranks, error: BaseException) -> None:
    """Leave this rank's error line for the launcher."""
    if ranks.exchange is not None:
        step = isinstance(error, StepError)
        text = str(error) if step else f"{type(error).__name__}: {error}"
        path = ranks.exchange / f"rank-{ranks.rank}.error"
        kind = "recipe" if isinstance(error, RecipeError) else "step" if step else "exception"
        path.write_text(f"{kind} {' '.join(text.split())}\n", encoding="utf-8")


def report_result(ranks: Ranks, result: Mapping[str, Any]) -> None:
    """Rank 0 hands the run's metadata to the launcher (the ExecutorOutput is the launcher's)."""
    if ranks.exchange is not None and ranks.main:
        (ranks.exchange / RESULT_FILE).write_text(json.dumps(result), encoding="utf-8")


def join_ranks(ranks: Ranks, cuda: bool) -> None:
    """Join the other ranks, with :data:`COLLECTIVE_TIMEOUT` (the Trainer would give gloo 30
    minutes: transformers 4.46 passes ``ddp_timeout`` on to NCCL only). The Trainer keeps it."""
    import torch
    import torch.distributed as dist

    if ranks.size == 1 or dist.is_initialized():
        return
    if cuda:
        torch.cuda.set_device(ranks.local_rank)
    backend = "nccl" if cuda else "gloo"
    assert ranks.exchange is not None  # launched: the launcher's folder
    dist.init_process_group(
        backend=backend,
        init_method=(ranks.exchange / STORE_FILE).resolve().as_uri(),
        rank=ranks.rank,
        world_size=ranks.size,
        timeout=COLLECTIVE_TIMEOUT,
    )
    logger.info("rank %d of %d joined (%s)", ranks.rank, ranks.size, backend)
