"""Where a base model's files come from: a hub id, a local folder, or ``gs://`` (one copy per
bucket, made once by ``make cache-base-model``, instead of a hub download in every GPU step).

On Vertex AI a bucket is mounted under ``/gcs/<bucket>/…`` (Cloud Storage FUSE): a ``gs://``
model is read from there where the mount exists, else downloaded once into a local cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from yoda_step_io.cli import BadValueError, StepError
from yoda_step_io.files import CACHE_OWNER
from yoda_step_io.gcs import GS_URI, download_prefix, split_gs_uri, storage_client
from yoda_step_io.values import text

logger = logging.getLogger(__name__)

#: A Hugging Face hub id: ``NAME`` or ``OWNER/NAME``, at most 96 characters, no ``..``.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
HUB_ID_MAX_LENGTH = 96
BASE_MODEL_FORMS = "a hub id like microsoft/Phi-3-mini-4k-instruct or gs://BUCKET/PATH"


def is_hub_id(name: str) -> bool:
    return len(name) <= HUB_ID_MAX_LENGTH and ".." not in name and HUB_ID.match(name) is not None


def is_local_path(name: str) -> bool:
    """A model given as a folder: absolute, ``./``-relative, or an existing folder."""
    return name.startswith(("/", ".")) or Path(name).is_dir()


def _base_model_problem(name: str) -> str | None:
    if is_hub_id(name) or GS_URI.match(name) or is_local_path(name):
        return None
    return (
        f"expected {BASE_MODEL_FORMS} or a local folder (a hub id: letters, digits, . _ - and "
        f"at most one /, at most {HUB_ID_MAX_LENGTH} characters, no ..)"
    )


#: ``--base-model`` of the steps that load one.
BASE_MODEL = text(f"{BASE_MODEL_FORMS}, or a local folder", _base_model_problem)


def check_local_model(name: str, flag: str = "--base-model") -> None:
    """A base model given as a local folder must be one, with a ``config.json``.

    Raises:
        BadValueError: no such folder, or no config.json in it.
    """
    if not is_local_path(name):
        return
    folder = Path(name)
    if not folder.is_dir():
        raise BadValueError(flag, name, "no such folder")
    if not (folder / "config.json").is_file():
        raise BadValueError(flag, name, "the folder has no config.json: not a model folder")


#: The mark of a finished download in a cached copy (hidden: not part of the model's revision).
DOWNLOAD_COMPLETE = ".download-complete"


def gcs_mount_path(uri: str) -> Path:
    """``gs://bucket/key`` -> ``/gcs/bucket/key`` (whether or not the mount exists); the mount
    point is Vertex AI's ``/gcs`` unless ``$YODA_GCS_MOUNT`` says otherwise."""
    bucket, key = split_gs_uri(uri)
    return Path(os.environ.get("YODA_GCS_MOUNT", "/gcs")) / bucket / key


def model_cache_dir() -> Path:
    """Where ``gs://`` models are downloaded when no mount exists (``$YODA_MODEL_CACHE``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "yoda-phi3/models"
    return Path(os.environ.get("YODA_MODEL_CACHE", default))


#: What ``from_pretrained`` reads of a hub model: configs, tokenizer files, safetensors weights.
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]


def hub_snapshot(repo_id: str, revision: str | None = None) -> str:
    """The local folder of hub model ``repo_id`` (at ``revision``): from the cache, else
    downloaded once by huggingface_hub, which fails in about a second where the hub cannot be
    reached (transformers' own retries took a minute).

    Raises:
        StepError: not in the cache and the hub cannot be reached, or no such model.
    """
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES,
                                     etag_timeout=10))  # fmt: skip
    except Exception as error:  # offline, not found, gated, a network error: each its own type
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise StepError(
            f"cannot get base model {repo_id} from the Hugging Face hub ({reason[:200]}): "
            "check its id and the network, or give a local folder or a gs:// copy "
            "(make cache-base-model)"
        ) from error


def resolve_model(name_or_uri: str, revision: str | None = None) -> str:
    """The local folder ``from_pretrained`` should load: a folder as given; a hub id from the
    hub's cache (:func:`hub_snapshot`, at ``revision``); for ``gs://…`` the mounted folder, or
    a local copy (downloaded on first use, reused after).

    Raises:
        StepError: a hub id the hub does not give, or a ``gs://`` location that holds no files
            (or whose bucket does not exist).
    """
    if is_hub_id(name_or_uri) and not Path(name_or_uri).is_dir():
        return hub_snapshot(name_or_uri, revision)
    if not name_or_uri.startswith("gs://"):
        return name_or_uri
    mounted = gcs_mount_path(name_or_uri)
    if (mounted / "config.json").is_file():
        logger.info("reading %s through the Cloud Storage FUSE mount %s", name_or_uri, mounted)
        return str(mounted)
    return str(cached_copy(name_or_uri, model_cache_dir()))


def cached_copy(uri: str, cache_dir: Path) -> Path:
    """A local copy of the ``gs://`` folder ``uri`` in ``cache_dir``: downloaded on first use,
    reused after. Its completion mark is written last, so a killed download is downloaded again,
    never reused half-written.

    Raises:
        StepError: no files under ``uri``, its bucket does not exist, or an unsafe object name.
    """
    digest = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]
    local = cache_dir / digest
    complete = local / DOWNLOAD_COMPLETE
    if not complete.is_file():
        logger.info("downloading %s into %s (once)", uri, local)
        download_prefix(uri.rstrip("/"), local, owner=CACHE_OWNER)
        complete.touch()
    return local


def folder_revision(folder: Path) -> str:
    """``sha256:<hex>`` of a model folder's files (names and contents; hidden files left out)."""
    digest = hashlib.sha256()
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    for path in files:
        content = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                content.update(block)
        digest.update(f"{path.relative_to(folder).as_posix()}\0{content.hexdigest()}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def gcs_revision(uri: str) -> str:
    """``crc32c:<hex>`` of the objects under a ``gs://`` folder (names and the checksums Cloud
    Storage keeps): the copy's identity without reading gigabytes through the mount."""
    bucket, key = split_gs_uri(uri.rstrip("/"))
    prefix = f"{key}/" if key else ""
    lines = sorted(
        f"{blob.name[len(prefix) :]}\t{blob.crc32c}\n"
        for blob in storage_client().list_blobs(bucket, prefix=prefix)
        if not blob.name.endswith("/")
    )
    if not lines:
        raise StepError(f"no files found under {uri}: check the base model's URI")
    return f"crc32c:{hashlib.sha256(''.join(lines).encode()).hexdigest()}"


def model_revision(name_or_uri: str, commit: str | None = None) -> str:
    """The revision a base model was loaded at: the hub's commit hash (``commit``, as
    transformers resolved it), or a content hash of a local or ``gs://`` folder."""
    if name_or_uri.startswith("gs://"):
        return gcs_revision(name_or_uri)
    if Path(name_or_uri).is_dir():
        return folder_revision(Path(name_or_uri))
    return commit or "unknown"


def check_revision(name_or_uri: str, expected: str, commit: str | None = None) -> str:
    """The base model's current revision, which must be the one the adapter was trained on.

    Raises:
        StepError: another revision (the hub moved on, the folder or bucket copy changed).
    """
    actual = model_revision(name_or_uri, commit)
    if actual != expected:
        raise StepError(
            f"the base model {name_or_uri} is at revision {actual}, but the adapter was trained "
            f"on revision {expected}: load that revision (or retrain on this one)"
        )
    return actual
