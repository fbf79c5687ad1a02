"""The pipeline: wiring only. Each task gets a display name and its resources; each step's
parameters come from the parameter table (:mod:`yoda_pipeline.parameters`)."""

from typing import Any

from kfp import dsl

from yoda_pipeline.components import StepComponents
from yoda_pipeline.parameters import PARAMETERS, is_compiled
from yoda_pipeline.rows import Step
from yoda_pipeline.settings import PipelineSettings
from yoda_pipeline.signatures import kfp_function, kfp_type, step_parameters


def _gpu_task(task: dsl.PipelineTask, settings: PipelineSettings, gpus: int = 1) -> None:
    """``gpus`` GPUs, CPUs and memory for a training or generation task on Vertex AI, and
    retries: a preempted or failed GPU task runs again, and fine-tuning resumes from its last
    checkpoint (kept beside the task's Model output, the same folder on every retry of one run).
    """
    task.set_retry(
        num_retries=settings.gpu_task_retries, backoff_duration="60s", backoff_factor=2.0
    )
    task.set_accelerator_type(settings.accelerator_type)
    task.set_accelerator_limit(gpus)
    task.set_cpu_limit(settings.cpu_limit)
    task.set_memory_limit(settings.memory_limit)


PIPELINE_DOC = """The Yoda fine-tuning pipeline.

1. Data transformation: raw CSV -> conversational train/test JSON Lines.
2. Fine-tuning, once per recipe of the ``sweep`` (side by side): LoRA adapter on a 4-bit Phi-3
   base (GPU), TensorBoard logs and metrics; the champion, by validation loss, goes on.
3. Inference: batched generation on the test set (GPU) -> predictions CSV, and the base
   model's answers (the adapter switched off) unless ``with_base_model`` is false.
4. Evaluation: ragas scores per sample (CSV) and aggregated (Metrics), for the
   fine-tuned model, the base model and the echo baseline, with the uplifts.
5. Report: HTML and Markdown for people (tables, loss curves, distributions, samples).
6. Quality gate: the fine-tuned model must beat the base model and the echo baseline by
   the margins and reach the floor, on ``gate_metric``.
7. Only then: registration in Vertex AI Model Registry, a new version of
   ``registry_model_name``, the default one if it beats the current default.
"""


def build_pipeline(components: StepComponents, settings: PipelineSettings) -> Any:
    """``model_training_pipeline``, its parameters from the table, their defaults ``settings``."""

    def wire(values: dict[str, Any]) -> None:
        def given(step: Step) -> dict[str, Any]:
            """The step's parameters: run parameters, or constants of the compiled rows."""
            return {
                name: getattr(settings, name) if is_compiled(name) else values[name]
                for name in step_parameters(step)
            }

        data = components.data_transformation(**given("data_transformation"))
        data.set_display_name("Data transformation")

        with dsl.ParallelFor(
            values["sweep"], parallelism=settings.sweep_parallelism, name="recipes"
        ) as recipe:
            fine_tuning = components.fine_tuning(
                train_dataset=data.outputs["train"], recipe=recipe, **given("fine_tuning")
            ).set_display_name("Fine-tuning (QLoRA), one recipe")
            # as many GPUs as ranks, both compiled in: a GPU request is fixed in the spec
            _gpu_task(fine_tuning, settings, gpus=settings.accelerator_count)

        champion = components.champion(
            outcomes=dsl.Collected(fine_tuning.outputs["outcome"]), **given("champion")
        ).set_display_name("Champion (validation loss)")

        inference = components.inference(
            model=champion.outputs["model"],
            test_dataset=data.outputs["test"],
            **given("inference"),
        ).set_display_name("Inference")
        _gpu_task(inference, settings)

        evaluation = components.evaluation(
            predictions=inference.outputs["predictions"],
            base_predictions=inference.outputs["base_predictions"],
            **given("evaluation"),
        ).set_display_name("Evaluation (ragas)")

        components.report(
            evaluation_results=evaluation.outputs["evaluation_results"],
            evaluation_metrics=evaluation.outputs["metrics"],
            training_metrics=champion.outputs["metrics"],
            model=champion.outputs["model"],
            **given("report"),
        ).set_display_name("Report")

        gate = components.gate(
            evaluation_metrics=evaluation.outputs["metrics"], **given("gate")
        ).set_display_name("Quality gate")

        with dsl.If(gate.outputs["passed"] == True, name="gate-passed"):  # noqa: E712
            components.register(
                model=champion.outputs["model"],
                evaluation_metrics=evaluation.outputs["metrics"],
                **given("register"),
            ).set_display_name("Register in Model Registry").set_retry(
                num_retries=3, backoff_duration="30s", backoff_factor=2.0
            )  # idempotent (yoda_registry.register): a retry reuses the version, imports only

    signature = {name: kfp_type(name) for name in PARAMETERS}
    function = kfp_function(
        "model_training_pipeline", PIPELINE_DOC, signature, wire,
        defaults=settings.parameter_values(),
    )  # fmt: skip
    return dsl.pipeline(
        name=settings.pipeline_name,
        description="Fine-tune Phi-3-mini with QLoRA to speak like Yoda, predict and evaluate.",
    )(function)
