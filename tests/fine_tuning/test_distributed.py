"""Data-parallel fine-tuning on CPU ranks (gloo), through the step's own CLI and PyTorch's
launcher: one adapter and one set of outputs, written by rank 0; the loss curve of one rank at the
same effective batch; a resume after a kill; a dead rank failing the step with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from yoda_fine_tuning import distributed
from yoda_fine_tuning.checkpoints import checkpoint_folder_for, last_complete_checkpoint
from yoda_fine_tuning.cli import main

pytestmark = pytest.mark.distributed

#: CPU ranks, as the tolerance below is measured: a CUDA machine's GPUs are hidden from the steps.
CPU_ONLY = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


STEP = str(Path(sys.executable).with_name("yoda-fine-tuning"))
#: 36 packed rows of the sample: at 4 rows a step, steps 1-8 see the same rows in one rank and
#: in two (the launcher hands each rank alternate batches of one seeded sampler); the epoch's
#: last step differs (two ranks pad it with repeated rows).
STEPS = 8
#: Two half-batches' mean gradient is the whole batch's in exact arithmetic (packing makes every
#: row 64 tokens); what is left is float32 rounding in another summation order. The Trainer logs
#: losses to 4 decimals: measured, the 8 losses of 1 and 2 ranks are equal. 1e-3 leaves room for
#: rounding to grow and still catches a learning rate doubled on 2 ranks (0.0064 by step 8,
#: measured with that bug put in once).
TOLERANCE = 1e-3


def command(tmp: Path, model: Path, train: Path, *flags: str) -> list[str]:
    return [STEP, "--train-dataset", str(train), "--base-model", str(model),
            "--model-output", str(tmp / "model"), "--metrics-output", str(tmp / "metrics"),
            "--quantization", "auto", "--lora-dropout", "0", "--max-steps", str(STEPS),
            "--logging-steps", "1", *flags]  # fmt: skip


def losses(metrics: Path) -> list[float]:
    history = json.loads((metrics / "log_history.json").read_text())
    return [entry["loss"] for entry in history if "loss" in entry]


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=CPU_ONLY)


def last_error(stderr: str) -> str:
    """A failed launcher's last stderr line, its ``error:`` line (the ranks' own lines, their
    tracebacks included, come before it)."""
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), stderr[-3000:]
    return last


def test_two_ranks_write_one_adapter_and_learn_as_one_rank_does(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path
) -> None:
    one = tmp_path / "one"
    done = run(command(one, tiny_model_dir, sample_train_jsonl,
                       "--per-device-train-batch-size", "4"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    two = tmp_path / "two"
    artifacts = {name: {"artifacts": [{"name": name, "uri": str(two / name)}]}
                 for name in ("model", "metrics")}  # fmt: skip
    executor = {"outputs": {"artifacts": artifacts, "outputFile": str(tmp_path / "executor.json")}}
    done = run(command(two, tiny_model_dir, sample_train_jsonl,
                       "--per-device-train-batch-size", "2", "--accelerator-count", "2",
                       "--executor-input", json.dumps(executor)))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "starting 2 ranks (gloo" in done.stderr and "joined (gloo)" in done.stderr

    # one set of outputs, as one process writes them: nothing of a second rank's anywhere
    assert sorted(p.name for p in two.iterdir()) == [
        ".metrics.yoda-output", ".model.yoda-output", "metrics", "model"]  # fmt: skip
    assert sorted(p.name for p in (two / "model").iterdir()) == sorted(
        p.name for p in (one / "model").iterdir())  # fmt: skip
    assert len(list((two / "metrics" / "tensorboard").iterdir())) == len(
        list((one / "metrics" / "tensorboard").iterdir()))  # fmt: skip
    assert not checkpoint_folder_for(two / "model", None).exists()
    reported = json.loads((tmp_path / "executor.json").read_text())
    metrics = json.loads((two / "metrics" / "metrics.json").read_text())
    assert reported["artifacts"]["metrics"]["artifacts"][0]["metadata"]["world_size"] == 2
    assert (metrics["world_size"], metrics["effective_batch_size"]) == (2, 4)
    assert metrics["train_steps"] == STEPS and metrics["tokens_per_second"] > 0

    single, double = losses(one / "metrics"), losses(two / "metrics")
    assert len(single) == len(double) == STEPS
    assert max(abs(a - b) for a, b in zip(single, double, strict=True)) < TOLERANCE, (
        single, double)  # fmt: skip
    evaluated = [entry["eval_loss"] for entry in json.loads(
        (two / "metrics" / "log_history.json").read_text()) if "eval_loss" in entry]  # fmt: skip
    assert evaluated[-1] < evaluated[0], "the two ranks did not learn"


def test_run_local_with_two_ranks_gives_one_adapter_and_the_one_rank_losses(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """`make run-local SET="accelerator_count=2"`: the same compiled pipeline, KFP's local runner,
    the fine-tuning task on two gloo ranks; its losses are the 1-rank run's at the same
    effective batch, and the run goes on through inference to the report."""
    from yoda_pipeline.offline import run_local
    from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings

    common = {"image_lock": LOCAL_IMAGE_LOCK, "tiny_model_dir": tiny_model_dir, "max_steps": 8,
              "logging_steps": 1, "lora_dropout": 0.0}  # fmt: skip
    runs = {}
    for ranks in (1, 2):
        settings = PipelineSettings(**common, local_runs_dir=tmp_path / str(ranks),
                                    accelerator_count=ranks,
                                    per_device_train_batch_size=4 // ranks)  # fmt: skip
        runs[ranks] = run_local(settings)
    tuned = {
        ranks: next(run.glob("outputs/*/**/fine-tuning-component")) for ranks, run in runs.items()
    }
    single, double = losses(tuned[1] / "metrics"), losses(tuned[2] / "metrics")
    assert max(abs(a - b) for a, b in zip(single, double, strict=True)) < TOLERANCE
    assert json.loads((tuned[2] / "metrics" / "metrics.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in (tuned[2] / "model").iterdir()) == sorted(
        p.name for p in (tuned[1] / "model").iterdir())  # fmt: skip
    assert next(runs[2].glob("outputs/*/report-component/html")).is_file()


def test_a_killed_two_rank_run_resumes(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path
) -> None:
    args = command(tmp_path, tiny_model_dir, sample_train_jsonl, "--accelerator-count", "2",
                   "--per-device-train-batch-size", "2", "--max-steps", "24")  # fmt: skip
    folder = checkpoint_folder_for(tmp_path / "model", None)
    first = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=CPU_ONLY
    )
    _wait_for(lambda: last_complete_checkpoint(folder) is not None, first, "a checkpoint")
    ranks = [_rank_pid(first.pid, rank) for rank in (0, 1)]
    first.send_signal(signal.SIGKILL)  # the launcher is killed: its ranks must not train on
    first.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in ranks):
        assert time.monotonic() < deadline, "a rank outlived its killed launcher"
        time.sleep(0.05)
    killed_at = last_complete_checkpoint(folder)
    assert killed_at is not None and int(killed_at.rsplit("-", 1)[1]) < 24
    assert not (tmp_path / "metrics" / "metrics.json").exists()

    rerun = run(args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from checkpoint" in rerun.stderr
    metrics = json.loads((tmp_path / "metrics" / "metrics.json").read_text())
    assert (metrics["train_steps"], metrics["world_size"]) == (24, 2)
    assert not folder.exists(), "the finished run's checkpoints are removed"


def test_a_rank_that_dies_fails_the_step_with_one_line(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path
) -> None:
    args = command(tmp_path, tiny_model_dir, sample_train_jsonl, "--accelerator-count", "2",
                   "--max-steps", "400", "--per-device-train-batch-size", "2")  # fmt: skip
    launcher = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=CPU_ONLY)  # fmt: skip
    folder = checkpoint_folder_for(tmp_path / "model", None)
    _wait_for(lambda: last_complete_checkpoint(folder) is not None, launcher, "a checkpoint")
    processes = [launcher.pid, *(_rank_pid(launcher.pid, rank) for rank in (0, 1))]
    assert all(_is_loopback(address) for address in listening(processes)), (
        "the ranks listen beyond this machine")  # fmt: skip
    os.kill(_rank_pid(launcher.pid, 1), signal.SIGKILL)
    killed = time.monotonic()
    _, stderr = launcher.communicate(timeout=120)
    assert time.monotonic() - killed < 60, "the other rank hung instead of stopping"
    assert launcher.returncode == 2
    last = last_error(stderr)
    assert "rank 1 of 2 failed" in last and last.endswith("SIGKILL")
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name], (
        "the outputs are removed; the checkpoints stay for the retry")  # fmt: skip


def test_a_stopped_launcher_says_so_in_one_line_and_keeps_the_checkpoints(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path
) -> None:
    """SIGTERM (Vertex AI cancels or preempts the task): the ranks stop with their launcher, one
    line, no outputs; the checkpoints stay for the retry."""
    args = command(tmp_path, tiny_model_dir, sample_train_jsonl, "--accelerator-count", "2",
                   "--max-steps", "400", "--per-device-train-batch-size", "2")  # fmt: skip
    launcher = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=CPU_ONLY)  # fmt: skip
    folder = checkpoint_folder_for(tmp_path / "model", None)
    _wait_for(lambda: last_complete_checkpoint(folder, 2) is not None, launcher, "a checkpoint")
    ranks = [_rank_pid(launcher.pid, rank) for rank in (0, 1)]
    launcher.send_signal(signal.SIGTERM)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 2
    last = last_error(stderr)
    assert "stopped by SIGTERM" in last and "2 ranks" in last
    assert not any(Path(f"/proc/{pid}").exists() for pid in ranks)
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


def test_a_diverged_two_rank_run_stops_every_rank_with_one_line(
    tmp_path: Path, nan_model_dir: Path, sample_train_jsonl: Path
) -> None:
    args = command(tmp_path, nan_model_dir, sample_train_jsonl, "--accelerator-count", "2",
                   "--per-device-train-batch-size", "2")  # fmt: skip
    done = run(args)
    assert done.returncode == 2
    last = last_error(done.stderr)
    assert "of 2 failed" in last and "training diverged" in last, "the root cause, not a lost peer"
    assert not (tmp_path / "model").exists() and not (tmp_path / "metrics").exists()
    assert not checkpoint_folder_for(tmp_path / "model", None).exists()


@pytest.mark.parametrize(
    ("flags", "named", "fragment"),
    [
        (["--accelerator-count", "0"], "--accelerator-count '0'", "from 1 to 16"),
        (["--accelerator-count", "2", "--quantization", "4bit"], "--quantization '4bit'",
         "needs a CUDA GPU"),
    ],
)  # fmt: skip
def test_bad_rank_counts_are_refused_before_any_work(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path,
    one_error_line: Callable[..., str], flags: list[str], named: str, fragment: str,
) -> None:  # fmt: skip
    line = one_error_line(main, *command(tmp_path, tiny_model_dir, sample_train_jsonl)[1:],
                          *flags)  # fmt: skip
    assert line.startswith(f"error: {named}:") and fragment in line
    assert list(tmp_path.iterdir()) == []


def test_a_missing_launcher_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_error_line: Callable[..., str],
    tiny_model_dir: Path, sample_train_jsonl: Path,
) -> None:  # fmt: skip
    """A torch without torch.distributed's launcher (the boundary stood in for: the import)."""
    monkeypatch.setitem(sys.modules, "torch.distributed.elastic.multiprocessing", None)
    line = one_error_line(main, *command(tmp_path, tiny_model_dir, sample_train_jsonl)[1:],
                          "--accelerator-count", "2")  # fmt: skip
    assert "(torch.distributed) is missing" in line
    assert list(tmp_path.iterdir()) == [], "nothing half-written"


def test_the_ranks_are_read_from_the_launchers_environment(tmp_path: Path) -> None:
    assert distributed.this_process({}) == distributed.Ranks()
    environ = {distributed.EXCHANGE_VARIABLE: str(tmp_path), "RANK": "1", "WORLD_SIZE": "2",
               "LOCAL_RANK": "1"}  # fmt: skip
    ranks = distributed.this_process(environ)
    assert (ranks.rank, ranks.size, ranks.main, ranks.exchange) == (1, 2, False, tmp_path)
    assert distributed.rank_argv(["--a", "1", "--executor-input", "{}", "--b"]) == [
        "--a", "1", "--b"]  # fmt: skip


def test_the_root_cause_is_named_not_the_ranks_that_followed() -> None:
    killed, stopped = -9, -15  # from outside; by the launcher, once another rank failed
    lost_peer = ("exception", "RuntimeError: Connection reset by peer")
    assert distributed.root_cause({0: 1, 1: killed}, {0: lost_peer, 1: None}) == 1
    diverged = ("step", "training diverged: …")
    assert distributed.root_cause({0: 2, 1: 2}, {0: diverged, 1: diverged}) == 0
    assert distributed.root_cause({0: stopped, 1: 2}, {0: None, 1: diverged}) == 1
    assert distributed.root_cause({0: 1, 1: stopped}, {0: lost_peer, 1: None}) == 0


def _wait_for(ready: Callable[[], bool], process: subprocess.Popen[str] | subprocess.Popen[bytes],
              what: str) -> None:  # fmt: skip
    deadline = time.monotonic() + 300
    while not ready():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within five minutes"
        time.sleep(0.05)


def listening(pids: list[int]) -> set[str]:
    """The local addresses (``/proc/net/tcp*``'s hex) of the TCP sockets ``pids`` listen on."""
    targets = [str(fd.readlink()) for pid in pids for fd in Path(f"/proc/{pid}/fd").iterdir()]
    inodes = {target[len("socket:[") : -1] for target in targets if target.startswith("socket:[")}
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(fields[1])
    return found


def _is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 or an IPv4-mapped 127.x, in ``/proc/net/tcp*``'s little-endian hex."""
    host = address.split(":")[0]
    if len(host) == 8:
        return host.endswith("7F")
    return host == "0" * 24 + "01000000" or (host[:24] == "0" * 16 + "FFFF0000"
                                              and host.endswith("7F"))  # fmt: skip


def test_the_loopback_check_tells_loopback_from_every_interface() -> None:
    assert _is_loopback("0100007F:1F90") and _is_loopback("00000000000000000000000001000000:50")
    assert not _is_loopback("00000000:1F90") and not _is_loopback("0" * 32 + ":50")


def _rank_pid(launcher: int, rank: int) -> int:
    """The process of ``rank`` among the launcher's children (its environment says RANK)."""
    for child in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(child)
    raise AssertionError(f"no rank {rank} among the launcher's children")
