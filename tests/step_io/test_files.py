"""A step deletes only what it wrote (issue 17): outputs are marked as the step's own before it
writes them; anything else in their way, an overlap with an input and folders such as ``.`` are
refused with one line, before any work; a retry replaces its own earlier, partial outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from yoda_step_io import StepError, check_outputs, outputs_in_place
from yoda_step_io.files import owner_mark, write_text_atomic


def victim(folder: Path) -> Path:
    """A user's folder: a file and a subfolder that no step wrote."""
    (folder / "sub").mkdir(parents=True)
    (folder / "keep.txt").write_text("mine")
    (folder / "sub" / "deep.txt").write_text("mine too")
    return folder


def intact(folder: Path) -> bool:
    return (folder / "keep.txt").read_text() == "mine" and (
        folder / "sub" / "deep.txt"
    ).read_text() == "mine too"


def test_the_data_step_refuses_the_working_folder(
    tmp_path: Path,
    sample_csv: Path,
    one_error_line: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from yoda_data_transformation.cli import main

    monkeypatch.chdir(victim(tmp_path))
    line = one_error_line(main, "--raw-data-uri", str(sample_csv), "--train-output", ".",
                          "--test-output", "test.jsonl")  # fmt: skip
    assert "the working folder" in line
    assert intact(tmp_path) and sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "sub"]


@pytest.mark.parametrize("spelling", ["victim", "victim/"])
def test_the_data_step_refuses_a_users_folder(
    tmp_path: Path, sample_csv: Path, one_error_line: Callable[..., str], spelling: str
) -> None:
    from yoda_data_transformation.cli import main

    victim(tmp_path / "victim")
    line = one_error_line(main, "--raw-data-uri", str(sample_csv),
                          "--train-output", str(tmp_path / spelling),
                          "--test-output", str(tmp_path / "test.jsonl"))  # fmt: skip
    assert str(tmp_path / "victim") in line and "already exists" in line
    assert intact(tmp_path / "victim") and not (tmp_path / "test.jsonl").exists()


def test_the_evaluation_refuses_a_users_metrics_folder(
    tmp_path: Path, one_error_line: Callable[..., str]
) -> None:
    from yoda_evaluation.cli import main

    predictions = tmp_path / "predictions.csv"
    predictions.write_text("user_input,reference,extracted_response\nhi,hi,hi\n")
    victim(tmp_path / "victim2")
    line = one_error_line(main, "--predictions", str(predictions),
                          "--results-output", str(tmp_path / "results.csv"),
                          "--metrics-output", str(tmp_path / "victim2"))  # fmt: skip
    assert "victim2 already exists" in line and intact(tmp_path / "victim2")


def test_fine_tuning_refuses_to_write_over_its_base_model(
    tmp_path: Path, sample_train_jsonl: Path, one_error_line: Callable[..., str]
) -> None:
    from yoda_fine_tuning.cli import main

    base = victim(tmp_path / "basecopy")
    (base / "config.json").write_text("{}")
    line = one_error_line(main, "--train-dataset", str(sample_train_jsonl),
                          "--quantization", "auto", "--base-model", str(base),
                          "--model-output", str(base),
                          "--metrics-output", str(tmp_path / "metrics"))  # fmt: skip
    assert "overlaps the input" in line and intact(base)
    # inside the input is refused as well, and so is an input inside the output
    for model_output in (base / "model", tmp_path):
        one_error_line(main, "--train-dataset", str(sample_train_jsonl), "--base-model", str(base),
                       "--model-output", str(model_output), "--quantization", "auto",
                       "--metrics-output", str(tmp_path / "m"))  # fmt: skip
    assert intact(base)


@pytest.mark.parametrize(
    ("where", "why"),
    [("/", "a top-level folder"), ("/tmp", "a top-level folder"), ("~", "a home folder"),
     ("..", "one above it|top-level"), (".", "the working folder")],
)  # fmt: skip
def test_folders_a_step_never_writes(where: str, why: str) -> None:
    with pytest.raises(StepError, match=why):
        check_outputs(Path(where).expanduser())


def test_two_outputs_that_overlap_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StepError, match="overlap"):
        check_outputs(tmp_path / "out", tmp_path / "out" / "test.jsonl")


def test_another_steps_output_is_refused_by_name(tmp_path: Path) -> None:
    with outputs_in_place(tmp_path / "model", owner="yoda-fine-tuning") as (model,):
        model.mkdir()
        (model / "adapter_model.safetensors").write_bytes(b"w")
    with pytest.raises(StepError, match="is the output of yoda-fine-tuning"):
        check_outputs(tmp_path / "model", owner="yoda-data-transformation")
    with outputs_in_place(tmp_path / "model", owner="yoda-fine-tuning") as (model,):
        model.mkdir()  # the same step may replace it: a rerun
    assert list(model.iterdir()) == []


def test_a_retry_replaces_what_its_killed_attempt_left(tmp_path: Path) -> None:
    """A SIGKILL leaves the partial output and its mark; the retry recognises both."""
    output = tmp_path / "task" / "model"
    attempt = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from yoda_step_io import outputs_in_place\n"
        "with outputs_in_place(Path(sys.argv[1]), owner='yoda-fine-tuning') as (out,):\n"
        "    out.mkdir(); (out / 'half.bin').write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", attempt, str(output)], check=False)
    assert killed.returncode == -signal.SIGKILL
    assert (output / "half.bin").is_file() and owner_mark(output).is_file()
    with outputs_in_place(output, owner="yoda-fine-tuning") as (out,):
        out.mkdir()
        (out / "whole.bin").write_bytes(b"whole")
    assert sorted(p.name for p in output.iterdir()) == ["whole.bin"]


def test_a_failure_removes_exactly_what_the_step_created(tmp_path: Path) -> None:
    """Nothing half-written is left; an empty folder that was there (KFP may make it) is left as
    it was, and a user's file beside the outputs is never touched."""
    (tmp_path / "model").mkdir()
    (tmp_path / "beside.txt").write_text("mine")
    outputs = (tmp_path / "model", tmp_path / "m.json", tmp_path / "nested" / "adapter")
    with pytest.raises(RuntimeError), outputs_in_place(*outputs) as (model, metrics, adapter):
        model.mkdir()  # the block starts with no output in place
        (model / "weights").write_text("half")
        metrics.write_text("{")
        adapter.mkdir()  # a folder output that was not there before
        (adapter / "weights").write_text("half")
        raise RuntimeError("boom")
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == ["beside.txt", "model", "nested"]


def test_outputs_in_place_refuse_what_is_not_theirs_before_the_block(tmp_path: Path) -> None:
    victim(tmp_path / "victim")
    ran = []
    with pytest.raises(StepError), outputs_in_place(tmp_path / "victim"):
        ran.append(True)
    assert not ran and intact(tmp_path / "victim")


def test_a_symlink_in_the_way_is_refused(tmp_path: Path) -> None:
    victim(tmp_path / "victim")
    (tmp_path / "link").symlink_to(tmp_path / "victim")
    with pytest.raises(StepError, match="already exists"):
        check_outputs(tmp_path / "link")
    assert intact(tmp_path / "victim")


def test_outputs_in_place_replace_a_rerun_and_keep_what_succeeded(tmp_path: Path) -> None:
    file_out, dir_out = tmp_path / "a.txt", tmp_path / "model"
    with outputs_in_place(file_out) as (file_path,):
        file_path.write_text("old")
    with outputs_in_place(file_out, dir_out) as (file_path, dir_path):
        assert (file_path, dir_path) == (file_out, dir_out)
        assert not file_out.exists(), "a rerun starts from a clean slate"
        file_path.write_text("new")
        dir_path.mkdir()
        (dir_path / "weights").write_text("w")
    assert file_out.read_text() == "new"
    assert (dir_out / "weights").read_text() == "w"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".a.txt.yoda-output",
        ".model.yoda-output",
        "a.txt",
        "model",
    ]


def test_outputs_in_place_refuse_a_missing_output(tmp_path: Path) -> None:
    with (
        pytest.raises(FileNotFoundError, match="did not write"),
        outputs_in_place(tmp_path / "x", tmp_path / "y") as (x, _),
    ):
        x.write_text("only one")
    assert list(tmp_path.iterdir()) == []


def test_write_text_atomic_leaves_only_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "executor_output.json"
    write_text_atomic(target, "{}")
    write_text_atomic(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    assert list(target.parent.iterdir()) == [target]


def test_check_outputs_probes_and_cleans_up(tmp_path: Path) -> None:
    check_outputs(tmp_path / "a" / "train", tmp_path / "a" / "test", tmp_path / "b" / "model")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"]


def test_check_outputs_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.access(tmp_path / "ro", os.W_OK):
        pytest.skip("root ignores permission bits")
    with pytest.raises(
        StepError, match=r"cannot write to the output folder .*run the step's image as root"
    ):
        check_outputs(tmp_path / "ro" / "model")


def test_a_parent_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file where a folder should be")
    with pytest.raises(StepError, match=r"its parent .*afile is a file, not a folder$"):
        check_outputs(tmp_path / "afile" / "model")
