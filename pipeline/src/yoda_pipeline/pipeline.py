"""The pipeline: wiring only. Each task gets a display name and its resources."""

from typing import Any

from kfp import dsl

from yoda_pipeline.components import StepComponents
from yoda_pipeline.settings import PipelineSettings


def build_pipeline(components: StepComponents, settings: PipelineSettings) -> Any:
    """``model_training_pipeline``, its parameter defaults taken from ``settings``."""

    @dsl.pipeline(
        name=settings.pipeline_name,
        description="Fine-tune Phi-3-mini with QLoRA to speak like Yoda, predict and evaluate.",
    )
    def model_training_pipeline(
        raw_data_uri: str = settings.raw_data_uri,
        target_column: str = settings.target_column,
        test_fraction: float = settings.test_fraction,
        split_seed: int = settings.split_seed,
    ) -> None:
        """The Yoda fine-tuning pipeline.

        1. Data transformation: raw CSV -> conversational train/test JSON Lines.
        """
        components.data_transformation(
            raw_data_uri=raw_data_uri,
            target_column=target_column,
            test_fraction=test_fraction,
            seed=split_seed,
        ).set_display_name("Data transformation")

    return model_training_pipeline
