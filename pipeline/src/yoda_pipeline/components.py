"""Container components: thin adapters from artifact paths and parameters to each step's flags.

Each component's artifacts are declared here; its parameters and their flags come from the
parameter table (:mod:`yoda_pipeline.parameters`). ``@dsl.container_component`` fixes the image
when the function is decorated, so the components are built by :func:`build_components` from an
:class:`~yoda_pipeline.images.ImageLock` at compile time, never at import time.
"""

# No `from __future__ import annotations` here: KFP reads the real type objects of the
# component signatures.
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output
from kfp.dsl.base_component import BaseComponent

from yoda_pipeline.images import ImageLock
from yoda_pipeline.rows import Step
from yoda_pipeline.signatures import kfp_function, kfp_type, step_parameters


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
    champion: BaseComponent
    inference: BaseComponent
    evaluation: BaseComponent
    report: BaseComponent
    gate: BaseComponent
    register: BaseComponent


@dataclass(frozen=True)
class Io:
    """An artifact (or output parameter) of a component, and the step flag given its location:
    the placeholder's ``path`` or ``uri``, or (``location=None``) the placeholder itself. No
    flag: the step writes it through its ExecutorOutput alone."""

    annotation: Any
    flag: str | None
    location: str | None = "path"
    uri_flag: str | None = None  # an artifact's URI too, under this flag


def step_component(
    step: Step, image: str, command: str, doc: str, io: Mapping[str, Io], extra: Sequence[Any] = ()
) -> BaseComponent:
    """The container component of ``step``: its artifacts ``io``, then its parameters from the
    table, each passed to its flag; ``extra`` flags, then the executor input, at the end."""
    flags = step_parameters(step)
    inputs = {name: each.annotation for name, each in io.items()}
    inputs.update({name: kfp_type(name) for name in flags})

    def container(values: dict[str, Any]) -> dsl.ContainerSpec:
        args: list[Any] = []
        for name, each in io.items():
            value = values[name]
            if each.flag:
                args += [each.flag, getattr(value, each.location) if each.location else value]
            if each.uri_flag:
                args += [each.uri_flag, value.uri]
        for name, flag in flags.items():
            args += [flag, values[name]]
        executor_input = ["--executor-input", dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER]
        return dsl.ContainerSpec(
            image=image, command=[command], args=[*args, *extra, *executor_input]
        )

    function = kfp_function(f"{step}_component", doc, inputs, container, returns=dsl.ContainerSpec)
    return dsl.container_component(function)


def build_components(lock: ImageLock) -> StepComponents:
    """Container components whose images are the lock's digest references."""
    evaluation_image = lock.image("evaluation")  # the report's code ships in that package too
    registry_image = lock.image("registry")
    return StepComponents(
        data_transformation=step_component(
            "data_transformation", lock.image("data_transformation"), "yoda-data-transformation",
            "Raw Yoda CSV -> conversational train/test JSON Lines.",
            {"train": Io(Output[Dataset], "--train-output"),
             "test": Io(Output[Dataset], "--test-output")},
        ),
        fine_tuning=step_component(
            "fine_tuning", lock.image("fine_tuning"), "yoda-fine-tuning",
            "One recipe: LoRA on a 4-bit base; adapter to ``model``, TensorBoard logs to "
            "``metrics``, how it went to ``outcome``.",
            {"train_dataset": Io(Input[Dataset], "--train-dataset"),
             "recipe": Io(dict, "--recipe", None),
             "model": Io(Output[Model], "--model-output", uri_flag="--model-uri"),
             "metrics": Io(Output[Metrics], "--metrics-output", uri_flag="--metrics-uri"),
             "outcome": Io(dsl.OutputPath(str), "--outcome-output", None)},
        ),
        champion=step_component(
            "champion", registry_image, "yoda-champion",
            "The sweep's champion by validation loss: its adapter and metrics, and the table.",
            {"outcomes": Io(list, "--outcomes", None),
             "model": Io(Output[Model], "--model-output"),
             "metrics": Io(Output[Metrics], "--metrics-output")},
        ),
        inference=step_component(
            "inference", lock.image("inference"), "yoda-inference",
            "Batched generation on the test set -> ``user_input,reference,extracted_response`` "
            "CSV, and the same with the adapter switched off (the base model), unless turned off.",
            {"model": Io(Input[Model], "--model-dir"),
             "test_dataset": Io(Input[Dataset], "--test-dataset"),
             "predictions": Io(Output[Dataset], "--predictions-output"),
             "base_predictions": Io(Output[Dataset], "--base-predictions-output")},
        ),
        evaluation=step_component(
            "evaluation", evaluation_image, "yoda-evaluation",
            "ragas scores per sample (CSV) and aggregated (Metrics): fine-tuned, base model, echo.",
            {"predictions": Io(Input[Dataset], "--predictions"),
             "base_predictions": Io(Input[Dataset], "--base-predictions"),
             "evaluation_results": Io(Output[Dataset], "--results-output"),
             "metrics": Io(Output[Metrics], "--metrics-output")},
        ),
        report=step_component(
            "report", evaluation_image, "yoda-report",
            "The run's report for people: HTML (Vertex's \"View HTML\") and Markdown.",
            {"evaluation_results": Io(Input[Dataset], "--evaluation-results"),
             "evaluation_metrics": Io(Input[Metrics], "--evaluation-metrics"),
             "training_metrics": Io(Input[Metrics], "--training-metrics"),
             "model": Io(Input[Model], "--model"),
             "html": Io(Output[HTML], "--html-output"),
             "markdown": Io(Output[Markdown], "--markdown-output")},
        ),
        gate=step_component(
            "gate", registry_image, "yoda-gate",
            "Does the fine-tuned model beat both baselines by the margins and reach the floor? "
            "``passed`` is the registration's condition.",
            {"evaluation_metrics": Io(Input[Metrics], "--evaluation-metrics"),
             "decision": Io(Output[Metrics], "--decision-output"),
             "passed": Io(dsl.OutputPath(bool), "--passed-output", None)},
        ),
        register=step_component(
            "register", registry_image, "yoda-register",
            "A new version in Vertex AI Model Registry, served by the inference image by digest.",
            {"model": Io(Input[Model], "--model-uri", "uri"),
             "evaluation_metrics": Io(Input[Metrics], "--evaluation-metrics"),
             "vertex_model": Io(Output[VertexModel], None)},
            # the code whose batch answers were scored serves them
            ["--serving-image", lock.image("inference"),
             "--run-name", dsl.PIPELINE_JOB_NAME_PLACEHOLDER],
        ),
    )  # fmt: skip
