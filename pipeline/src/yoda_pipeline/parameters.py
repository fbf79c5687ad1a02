"""The pipeline's parameters, declared once: each row (:mod:`.rows`) is its name, type, default,
help, and the step flags it goes to. The settings (``YODA_<NAME>``, ``--set name=``), the
compiled signature and each container component's inputs and flags are derived from these rows
(:mod:`.signatures`), and so is ``docs/parameters.md``. What a value may be is the step's to
say: its own flag checks it, and the pre-flight (:mod:`.preflight`) runs every task's arguments
through them before anything runs. ``tests/pipeline/test_pipeline.py`` checks each default against
the step's. Adding a parameter is one row here plus its flag in the step. A ``compiled`` row is
fixed when the pipeline is compiled (a constant of the task, not a run parameter of the Vertex
AI console). A step flag the pipeline does not set is in :data:`FIXED`, with the reason.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import field_validator
from pydantic_settings import BaseSettings

from yoda_pipeline.rows import Step, To, parameter

#: The full public Yoda data set (720 rows) on the Hugging Face hub.
PUBLIC_DATA = "hf://datasets/dvgodoy/yoda_sentences/sentences.csv"

DATA: Step = "data_transformation"
TUNE: Step = "fine_tuning"
INFER: Step = "inference"


class PipelineParameters(BaseSettings):
    """The table. Defaults are the article's recipe; each row's help is its reference."""

    # Data transformation
    raw_data_uri: str = parameter(
        PUBLIC_DATA,
        "raw CSV (sentence, translation, translation_extra): a local path, gs:// or hf:// URI; "
        "the default is the public data set on the Hugging Face hub; left unset, `make "
        "run-local` uses the embedded sample",
        To(DATA, "--raw-data-uri"),
    )
    target_column: str = parameter(
        "translation_extra",
        'the assistant\'s answer: translation_extra (with "Yes, hrrrm.", as in the article) or '
        "translation",
        To(DATA, "--target-column"),
    )
    test_fraction: float = parameter(
        0.1, "share of rows held out as the test set", To(DATA, "--test-fraction")
    )
    split_seed: int = parameter(42, "seed of the train/test shuffle", To(DATA, "--seed"))

    # Fine-tuning
    base_model: str = parameter(
        "microsoft/Phi-3-mini-4k-instruct",
        "hub id, local folder or gs:// folder of any causal LM with a chat template; left unset, "
        "`make run-local` uses the generated tiny Phi-3",
        To(TUNE, "--base-model"),
        To(INFER, "--base-model"),
    )
    quantization: str = parameter(
        "4bit",
        "4bit (needs CUDA), auto (4bit with CUDA, else full precision, logged) or none; left "
        "unset, `make run-local` uses auto",
        To(TUNE, "--quantization"),
        To(INFER, "--quantization"),
    )
    compute_dtype: str = parameter(
        "float16",
        "auto: bfloat16 where the GPU has it, else float16; bfloat16 on a T4 is refused",
        To(TUNE, "--compute-dtype"),
        To(INFER, "--compute-dtype"),
    )
    lora_r: int = parameter(8, "LoRA rank", To(TUNE, "--lora-r"))
    lora_alpha: int = parameter(16, "LoRA alpha", To(TUNE, "--lora-alpha"))
    lora_dropout: float = parameter(0.05, "LoRA dropout", To(TUNE, "--lora-dropout"))
    lora_target_modules: str = parameter(
        "auto",
        "auto (the architecture's own; Phi-3: o_proj,qkv_proj,gate_up_proj,down_proj), "
        "all-linear, or comma-separated module names",
        To(TUNE, "--lora-target-modules"),
    )
    learning_rate: float = parameter(3e-4, "peak learning rate", To(TUNE, "--learning-rate"))
    num_train_epochs: float = parameter(
        10.0, "epochs (max_steps > 0 overrides)", To(TUNE, "--num-train-epochs")
    )
    max_steps: int = parameter(-1, "optimizer steps; -1: use the epochs", To(TUNE, "--max-steps"))
    per_device_train_batch_size: int = parameter(
        16, "sequences per step on each device", To(TUNE, "--per-device-train-batch-size")
    )
    auto_find_batch_size: bool = parameter(
        True, "halve the batch on CUDA out-of-memory and retry", To(TUNE, "--auto-find-batch-size")
    )
    max_seq_length: int = parameter(
        64, "tokens per training sequence", To(TUNE, "--max-seq-length")
    )
    packing: bool = parameter(True, "pack conversations into full sequences", To(TUNE, "--packing"))
    optim: str = parameter(
        "paged_adamw_8bit",
        "a transformers optimizer name (adamw_torch on a CPU)",
        To(TUNE, "--optim"),
    )
    gradient_checkpointing: bool = parameter(
        True,
        "recompute activations in the backward pass: less GPU memory, about a third more compute",
        To(TUNE, "--gradient-checkpointing"),
    )
    logging_steps: int = parameter(10, "a loss log every N steps", To(TUNE, "--logging-steps"))
    lr_scheduler_type: str = parameter(
        "linear", "the learning rate's schedule after the warm-up", To(TUNE, "--lr-scheduler-type")
    )
    warmup_ratio: float = parameter(
        0.0, "share of the steps the learning rate warms up over", To(TUNE, "--warmup-ratio")
    )
    weight_decay: float = parameter(0.0, "AdamW's weight decay", To(TUNE, "--weight-decay"))
    neftune_noise_alpha: float = parameter(
        0.0, "NEFTune noise on the input embeddings while training (0: off)",
        To(TUNE, "--neftune-noise-alpha"),
    )  # fmt: skip
    completion_only_loss: bool = parameter(
        False, "the loss on the assistant's answers alone, not on the prompt (needs packing "
        "false)", To(TUNE, "--completion-only-loss"),
    )  # fmt: skip
    validation_fraction: float = parameter(
        0.1,
        "share of the train split held out for the validation loss",
        To(TUNE, "--validation-fraction"),
    )
    training_seed: int = parameter(42, "seed of the training run", To(TUNE, "--training-seed"))
    accelerator_count: int = parameter(
        1,
        "GPUs of the fine-tuning task on Vertex AI, one data-parallel rank each (on a CPU: gloo "
        "processes); the effective batch is per_device_train_batch_size times this; compiled "
        "into the task's GPU request",
        To(TUNE, "--accelerator-count"),
        compiled=True,
    )
    checkpoint_dir: str = parameter(
        "",
        "checkpoint folder (a rerun with the same folder resumes there); empty: beside the model "
        "artifact",
        To(TUNE, "--checkpoint-dir"),
    )

    # Inference: greedy decoding by default; the sampling knobs apply only with do_sample.
    inference_batch_size: int = parameter(
        16, "test prompts per generate call", To(INFER, "--batch-size")
    )
    max_new_tokens: int = parameter(
        64, "tokens generated per answer at most", To(INFER, "--max-new-tokens")
    )
    do_sample: bool = parameter(
        False, "sample instead of greedy decoding", To(INFER, "--do-sample")
    )
    temperature: float = parameter(1.0, "sampling temperature", To(INFER, "--temperature"))
    top_p: float = parameter(1.0, "nucleus sampling's p", To(INFER, "--top-p"))
    with_base_model: bool = parameter(
        True,
        "the base model's answers too (the adapter switched off, one load): the report's baseline",
        To(INFER, "--with-base-model"),
    )
    merge_adapter: bool = parameter(
        False,
        "fold the adapter into a full-precision base before generating (never into a 4-bit one)",
        To(INFER, "--merge-adapter"),
    )

    # The sweep: recipes fine-tuned side by side, the champion chosen by validation loss
    sweep: list[dict[str, Any]] = parameter(
        [{}],
        "recipes to fine-tune side by side, a JSON list of objects of fine-tuning "
        'hyper-parameters over the ones above, e.g. [{"learning_rate": 1e-3}, {"lora_r": 16}]; '
        "[{}] (the default; [] too): one recipe, the parameters as they are. The champion, by "
        "validation loss, goes on to inference and registration",
        To("champion", "--sweep"),
        To(TUNE, "--recipe", each=True),
    )
    sweep_max_recipes: int = parameter(
        8,
        "the most recipes a sweep may have (each a fine-tuning task)",
        To("champion", "--max-recipes"),
    )

    # Evaluation
    evaluation_metrics: str = parameter(
        "",
        "comma-separated ragas metrics of the evaluation; empty: all of them",
        To("evaluation", "--metrics"),
    )

    # Quality gate: registration only when the fine-tuned model's mean on gate_metric beats the
    # base model's and the echo baseline's by these margins and reaches the floor.
    gate_metric: str = parameter(
        "rouge_l",
        "the metric the gate decides on (and the registry records)",
        To("gate", "--metric"),
        To("register", "--metric"),
    )
    gate_min_uplift_vs_base: float = parameter(
        0.05, "margin over the base model", To("gate", "--min-uplift-vs-base")
    )
    gate_min_uplift_vs_echo: float = parameter(
        0.05, "margin over the echo baseline", To("gate", "--min-uplift-vs-echo")
    )
    gate_min_score: float = parameter(
        0.5, "the floor of the fine-tuned model's mean", To("gate", "--min-score")
    )

    # Registration
    registry_model_name: str = parameter(
        "yoda-phi3",
        "the Model Registry model every passing run adds a version to; `make deploy` serves "
        "its default version on the endpoint <name>-endpoint",
        To("register", "--display-name"),
    )
    project_id: str = parameter("", "Google Cloud project id", To("register", "--project"))
    region: str = parameter(
        "", "Vertex AI region with T4 quota, e.g. europe-west4", To("register", "--location")
    )

    @field_validator("sweep", mode="before")
    @classmethod
    def _sweep_from_text(cls, value: Any) -> Any:
        """``--set sweep=[…]`` is JSON text; an empty sweep is one recipe: ``[{}]``."""
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else []
            except ValueError as error:
                raise ValueError(f"not JSON ({error})") from None
        return [{}] if value == [] else value

    def parameter_values(self) -> dict[str, Any]:
        """The pipeline's run parameters (not the compiled rows), by name."""
        return {name: getattr(self, name) for name in PARAMETERS}


def is_compiled(name: str) -> bool:
    """Whether the row ``name`` is fixed at compile time."""
    extra = PipelineParameters.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("compiled"))


#: every row, in the order of the table
ROWS: tuple[str, ...] = tuple(PipelineParameters.model_fields)
#: the pipeline's run parameters, in the order the pipeline declares them
PARAMETERS: tuple[str, ...] = tuple(name for name in ROWS if not is_compiled(name))

#: step -> flag -> why the pipeline leaves that step flag at the step's default (or unset)
FIXED: dict[Step, dict[str, str]] = {}
