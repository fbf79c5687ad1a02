"""The image lock: which image, by digest, runs each step.

Vertex AI runs each step in its own prebuilt image. A tag can move under a compiled pipeline;
a digest cannot, so the lock holds ``REGISTRY/REPO/NAME@sha256:<64 hex>`` per step and compile
refuses anything else (Vertex also rejects a reference with both a tag and a digest). Under
``"bases"`` it records the base each image was built on (written by images/build-push.sh): its
registry digest, ``NAME:TAG@sha256:<64 hex>``, or ``local stand-in sha256:<image id> for NAME…``
for the offline build's stand-ins (images/local/). Locks written before bases were recorded have
none.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

#: The images, in pipeline order (the report runs in the evaluation image; the quality gate and
#: the registration in the registry image; the inference image also serves the model online).
STEPS = ("data_transformation", "fine_tuning", "inference", "evaluation", "registry")

_DIGEST_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._/:-]*)@sha256:[0-9a-f]{64}$")
_STAND_IN_BASE = re.compile(r"^local stand-in sha256:[0-9a-f]{64} for [a-z0-9][a-z0-9._/:@-]*$")


class ImageLockError(ValueError):
    """The lock file is missing, malformed, or names an image by tag."""


def check_image_reference(step: str, reference: str) -> str:
    """Return ``reference`` if it is a digest-only reference, else raise :class:`ImageLockError`."""
    match = _DIGEST_REF.match(reference)
    if match is None:
        raise ImageLockError(
            f"image for step {step!r} is {reference!r}: expected "
            "REGISTRY/PATH/NAME@sha256:<64 hex> (a digest, not a tag); "
            "run `make build-images` to refresh the lock"
        )
    last_component = match.group("name").rsplit("/", 1)[-1]
    if ":" in last_component:
        raise ImageLockError(
            f"image for step {step!r} has both a tag and a digest ({reference}); "
            "Vertex AI rejects that: keep only NAME@sha256:…"
        )
    return reference


@dataclass(frozen=True)
class ImageLock:
    """Digest-pinned image references, one per step, and the base each was built on."""

    images: dict[str, str]
    bases: dict[str, str] = field(default_factory=dict)

    def image(self, step: str) -> str:
        return self.images[step]


def registry_host(reference: str) -> str:
    """The registry of an image reference: its first component where that names a host
    (``localhost``, or with a ``.`` or ``:``), else Docker Hub's."""
    first, sep, _ = reference.partition("/")
    if sep and (first == "localhost" or "." in first or ":" in first or first.startswith("[")):
        return first
    return "docker.io"


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.x.x.x`` or ``[::1]``, with or without a port."""
    name = host.rsplit("]", 1)[0].lstrip("[") if host.startswith("[") else host.split(":")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def loopback_images(lock: ImageLock) -> dict[str, str]:
    """Step -> registry, for the images of ``lock`` on this machine's own registry (placeholders
    or `make build-images-local`'s): no cloud service can pull them."""
    hosts = {step: registry_host(image) for step, image in lock.images.items()}
    return {step: host for step, host in hosts.items() if is_loopback(host)}


def check_bases(raw: object, images: dict[str, str]) -> dict[str, str]:
    """The lock's ``"bases"`` (``None``: an older lock, none recorded); :class:`ImageLockError`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) != set(STEPS):
        raise ImageLockError(f'"bases" must name the base of every step: {", ".join(STEPS)}')
    for step in STEPS:
        base = str(raw[step])
        stand_in = _STAND_IN_BASE.match(base) is not None
        if not stand_in and _DIGEST_REF.match(base) is None:
            raise ImageLockError(
                f"base of step {step!r} is {base!r}: expected NAME:TAG@sha256:<64 hex> "
                "or `local stand-in sha256:<64 hex> for NAME…`"
            )
        if stand_in and not is_loopback(registry_host(images[step])):
            raise ImageLockError(
                f"image for step {step!r} ({images[step]}) is built on a local stand-in base: "
                "it belongs on a registry on 127.0.0.1 only"
            )
    return {step: str(raw[step]) for step in STEPS}


def load_image_lock(path: Path) -> ImageLock:
    """Read and validate the lock file at ``path``.

    Raises:
        ImageLockError: missing file, invalid JSON, a missing step, a non-digest reference, or
            a malformed ``"bases"``.
    """
    if not path.is_file():
        raise ImageLockError(
            f"image lock {path} not found: run `make build-images` (cloud) or use "
            "images/digests.local.json for offline runs"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ImageLockError(f"image lock {path} is not valid JSON: {error}") from error
    if not isinstance(raw, dict):
        raise ImageLockError(f"image lock {path} must be a JSON object of step -> image")
    missing = [step for step in STEPS if step not in raw]
    if missing:
        raise ImageLockError(f"image lock {path} has no image for step(s): {', '.join(missing)}")
    images = {step: check_image_reference(step, str(raw[step])) for step in STEPS}
    try:
        bases = check_bases(raw.get("bases"), images)
    except ImageLockError as error:
        raise ImageLockError(f"image lock {path}: {error}") from error
    return ImageLock(images, bases)
