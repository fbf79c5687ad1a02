"""Container components: thin adapters from artifact paths and parameters to each step's flags.

``@dsl.container_component`` fixes the image when the function is decorated, so the components are
built by :func:`build_components` from an :class:`~yoda_pipeline.images.ImageLock` at compile time,
never at import time.
"""

# No `from __future__ import annotations` here: KFP reads the real type objects of the
# component signatures.
from dataclasses import dataclass

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output
from kfp.dsl.base_component import BaseComponent

from yoda_pipeline.images import ImageLock


class VertexModel(Artifact):  # type: ignore[misc]
    """A model version in Vertex AI Model Registry (metadata ``resourceName``), the artifact type
    Google's own pipeline components use, declared here without depending on them."""

    schema_title = "google.VertexModel"
    schema_version = "0.0.1"


@dataclass(frozen=True)
class StepComponents:
    """One container component per pipeline step."""

    data_transformation: BaseComponent
    fine_tuning: BaseComponent
    inference: BaseComponent
    evaluation: BaseComponent
    report: BaseComponent
    gate: BaseComponent
    register: BaseComponent


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

    fine_tuning_image = lock.image("fine_tuning")

    @dsl.container_component
    def fine_tuning_component(
        train_dataset: Input[Dataset],
        base_model: str,
        quantization: str,
        compute_dtype: str,
        lora_r: int,
        lora_alpha: int,
        lora_dropout: float,
        lora_target_modules: str,
        learning_rate: float,
        num_train_epochs: float,
        max_steps: int,
        per_device_train_batch_size: int,
        max_seq_length: int,
        gradient_checkpointing: bool,
        validation_fraction: float,
        seed: int,
        checkpoint_dir: str,
        model: Output[Model],
        metrics: Output[Metrics],
    ) -> dsl.ContainerSpec:
        """LoRA on a 4-bit base: adapter to ``model``, TensorBoard logs to ``metrics``."""
        return dsl.ContainerSpec(
            image=fine_tuning_image,
            command=["yoda-fine-tuning"],
            args=[
                "--train-dataset", train_dataset.path,
                "--base-model", base_model,
                "--quantization", quantization,
                "--compute-dtype", compute_dtype,
                "--lora-r", lora_r,
                "--lora-alpha", lora_alpha,
                "--lora-dropout", lora_dropout,
                "--target-modules", lora_target_modules,
                "--learning-rate", learning_rate,
                "--num-train-epochs", num_train_epochs,
                "--max-steps", max_steps,
                "--per-device-train-batch-size", per_device_train_batch_size,
                "--max-seq-length", max_seq_length,
                "--gradient-checkpointing", gradient_checkpointing,
                "--validation-fraction", validation_fraction,
                "--seed", seed,
                "--checkpoint-dir", checkpoint_dir,
                "--model-output", model.path,
                "--metrics-output", metrics.path,
                "--executor-input", dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
            ],
        )  # fmt: skip

    inference_image = lock.image("inference")

    @dsl.container_component
    def inference_component(
        model: Input[Model],
        test_dataset: Input[Dataset],
        quantization: str,
        compute_dtype: str,
        batch_size: int,
        max_new_tokens: int,
        do_sample: bool,
        temperature: float,
        top_p: float,
        with_base_model: bool,
        merge_adapter: bool,
        predictions: Output[Dataset],
        base_predictions: Output[Dataset],
    ) -> dsl.ContainerSpec:
        """Batched generation on the test set -> ``user_input,reference,extracted_response`` CSV,
        and the same with the adapter switched off (the base model), unless turned off."""
        return dsl.ContainerSpec(
            image=inference_image,
            command=["yoda-inference"],
            args=[
                "--model-dir", model.path,
                "--test-dataset", test_dataset.path,
                "--quantization", quantization,
                "--compute-dtype", compute_dtype,
                "--batch-size", batch_size,
                "--max-new-tokens", max_new_tokens,
                "--do-sample", do_sample,
                "--temperature", temperature,
                "--top-p", top_p,
                "--with-base-model", with_base_model,
                "--merge-adapter", merge_adapter,
                "--predictions-output", predictions.path,
                "--base-predictions-output", base_predictions.path,
                "--executor-input", dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
            ],
        )  # fmt: skip

    evaluation_image = lock.image("evaluation")

    @dsl.container_component
    def evaluation_component(
        predictions: Input[Dataset],
        base_predictions: Input[Dataset],
        metric_names: str,
        evaluation_results: Output[Dataset],
        metrics: Output[Metrics],
    ) -> dsl.ContainerSpec:
        """ragas scores per sample (CSV) and aggregated (Metrics): fine-tuned, base model, echo."""
        return dsl.ContainerSpec(
            image=evaluation_image,
            command=["yoda-evaluation"],
            args=[
                "--predictions", predictions.path,
                "--base-predictions", base_predictions.path,
                "--metrics", metric_names,
                "--results-output", evaluation_results.path,
                "--metrics-output", metrics.path,
                "--executor-input", dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
            ],
        )  # fmt: skip

    @dsl.container_component
    def report_component(
        evaluation_results: Input[Dataset],
        evaluation_metrics: Input[Metrics],
        training_metrics: Input[Metrics],
        model: Input[Model],
        html: Output[HTML],
        markdown: Output[Markdown],
    ) -> dsl.ContainerSpec:
        """The run's report for people: HTML (Vertex's "View HTML") and Markdown."""
        return dsl.ContainerSpec(
            image=evaluation_image,  # the report's code ships in the evaluation package
            command=["yoda-report"],
            args=[
                "--evaluation-results", evaluation_results.path,
                "--evaluation-metrics", evaluation_metrics.path,
                "--training-metrics", training_metrics.path,
                "--model", model.path,
                "--html-output", html.path,
                "--markdown-output", markdown.path,
                "--executor-input", dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
            ],
        )  # fmt: skip

    registry_image = lock.image("registry")

    @dsl.container_component
    def gate_component(
        evaluation_metrics: Input[Metrics],
        metric: str,
        min_uplift_vs_base: float,
        min_uplift_vs_echo: float,
        min_score: float,
        decision: Output[Metrics],
        passed: dsl.OutputPath(bool),  # type: ignore[valid-type]
    ) -> dsl.ContainerSpec:
        """Does the fine-tuned model beat both baselines by the margins and reach the floor?
        ``passed`` is the registration's condition."""
        return dsl.ContainerSpec(
            image=registry_image,
            command=["yoda-gate"],
            args=[
                "--evaluation-metrics", evaluation_metrics.path,
                "--metric", metric,
                "--min-uplift-vs-base", min_uplift_vs_base,
                "--min-uplift-vs-echo", min_uplift_vs_echo,
                "--min-score", min_score,
                "--decision-output", decision.path,
                "--passed-output", passed,
                "--executor-input", dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
            ],
        )  # fmt: skip

    serving_image = lock.image("inference")  # the code whose batch answers were scored

    @dsl.container_component
    def register_component(
        model: Input[Model],
        evaluation_metrics: Input[Metrics],
        project_id: str,
        region: str,
        display_name: str,
        metric: str,
        vertex_model: Output[VertexModel],
    ) -> dsl.ContainerSpec:
        """A new version in Vertex AI Model Registry, served by the inference image by digest."""
        return dsl.ContainerSpec(
            image=registry_image,
            command=["yoda-register"],
            args=[
                "--model-uri", model.uri,
                "--evaluation-metrics", evaluation_metrics.path,
                "--project", project_id,
                "--location", region,
                "--display-name", display_name,
                "--serving-image", serving_image,
                "--metric", metric,
                "--run-name", dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                "--executor-input", dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
            ],
        )  # fmt: skip

    return StepComponents(
        data_transformation=data_transformation_component,
        fine_tuning=fine_tuning_component,
        inference=inference_component,
        evaluation=evaluation_component,
        report=report_component,
        gate=gate_component,
        register=register_component,
    )
