"""Container components: thin adapters from artifact paths and parameters to each step's flags.

``@dsl.container_component`` fixes the image when the function is decorated, so the components are
built by :func:`build_components` from an :class:`~yoda_pipeline.images.ImageLock` at compile time,
never at import time.
"""

# No `from __future__ import annotations` here: KFP reads the real type objects of the
# component signatures.
from dataclasses import dataclass

from kfp import dsl
from kfp.dsl import Dataset, Output
from kfp.dsl.base_component import BaseComponent

from yoda_pipeline.images import ImageLock


@dataclass(frozen=True)
class StepComponents:
    """One container component per pipeline step."""

    data_transformation: BaseComponent


def build_components(lock: ImageLock) -> StepComponents:
    """Container components whose images are the lock's digest references."""
    data_image = lock.image("data_transformation")

    @dsl.container_component
    def data_transformation_component(
        raw_data_uri: str,
        target_column: str,
        test_fraction: float,
        seed: int,
        train: Output[Dataset],
        test: Output[Dataset],
    ) -> dsl.ContainerSpec:
        """Raw Yoda CSV -> conversational train/test JSON Lines."""
        return dsl.ContainerSpec(
            image=data_image,
            command=["yoda-data-transformation"],
            args=[
                "--raw-data-uri", raw_data_uri,
                "--target-column", target_column,
                "--test-fraction", test_fraction,
                "--seed", seed,
                "--train-output", train.path,
                "--test-output", test.path,
                "--executor-input", dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
            ],
        )  # fmt: skip

    return StepComponents(data_transformation=data_transformation_component)
