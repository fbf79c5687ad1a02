"""The pipeline: wiring only. Each task gets a display name and its resources."""

from typing import Any

from kfp import dsl

from yoda_pipeline.components import StepComponents
from yoda_pipeline.settings import PipelineSettings


def _gpu_task(task: dsl.PipelineTask, settings: PipelineSettings) -> None:
    """A GPU, CPUs and memory for a training or generation task on Vertex AI, and retries: a
    preempted or failed GPU task runs again, and fine-tuning resumes from its last checkpoint
    (kept beside the task's Model output, the same folder on every retry of one run)."""
    task.set_retry(
        num_retries=settings.gpu_task_retries, backoff_duration="60s", backoff_factor=2.0
    )
    task.set_accelerator_type(settings.accelerator_type)
    task.set_accelerator_limit(settings.accelerator_count)
    task.set_cpu_limit(settings.cpu_limit)
    task.set_memory_limit(settings.memory_limit)


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
        base_model: str = settings.base_model,
        quantization: str = settings.quantization,
        compute_dtype: str = settings.compute_dtype,
        lora_r: int = settings.lora_r,
        lora_alpha: int = settings.lora_alpha,
        lora_dropout: float = settings.lora_dropout,
        lora_target_modules: str = settings.lora_target_modules,
        learning_rate: float = settings.learning_rate,
        num_train_epochs: float = settings.num_train_epochs,
        max_steps: int = settings.max_steps,
        per_device_train_batch_size: int = settings.per_device_train_batch_size,
        max_seq_length: int = settings.max_seq_length,
        gradient_checkpointing: bool = settings.gradient_checkpointing,
        validation_fraction: float = settings.validation_fraction,
        training_seed: int = settings.training_seed,
        checkpoint_dir: str = settings.checkpoint_dir,
        inference_batch_size: int = settings.inference_batch_size,
        max_new_tokens: int = settings.max_new_tokens,
        do_sample: bool = settings.do_sample,
        temperature: float = settings.temperature,
        top_p: float = settings.top_p,
        with_base_model: bool = settings.with_base_model,
        merge_adapter: bool = settings.merge_adapter,
        evaluation_metrics: str = settings.evaluation_metrics,
        gate_metric: str = settings.gate_metric,
        gate_min_uplift_vs_base: float = settings.gate_min_uplift_vs_base,
        gate_min_uplift_vs_echo: float = settings.gate_min_uplift_vs_echo,
        gate_min_score: float = settings.gate_min_score,
        registry_model_name: str = settings.registry_model_name,
        project_id: str = settings.project_id,
        region: str = settings.region,
    ) -> None:
        """The Yoda fine-tuning pipeline.

        1. Data transformation: raw CSV -> conversational train/test JSON Lines.
        2. Fine-tuning: LoRA adapter on a 4-bit Phi-3 base (GPU), TensorBoard logs and metrics.
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
        data = components.data_transformation(
            raw_data_uri=raw_data_uri,
            target_column=target_column,
            test_fraction=test_fraction,
            seed=split_seed,
        ).set_display_name("Data transformation")

        fine_tuning = components.fine_tuning(
            train_dataset=data.outputs["train"],
            base_model=base_model,
            quantization=quantization,
            compute_dtype=compute_dtype,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            lora_target_modules=lora_target_modules,
            learning_rate=learning_rate,
            num_train_epochs=num_train_epochs,
            max_steps=max_steps,
            per_device_train_batch_size=per_device_train_batch_size,
            max_seq_length=max_seq_length,
            gradient_checkpointing=gradient_checkpointing,
            validation_fraction=validation_fraction,
            seed=training_seed,
            checkpoint_dir=checkpoint_dir,
        ).set_display_name("Fine-tuning (QLoRA)")
        _gpu_task(fine_tuning, settings)

        inference = components.inference(
            model=fine_tuning.outputs["model"],
            test_dataset=data.outputs["test"],
            quantization=quantization,
            compute_dtype=compute_dtype,
            batch_size=inference_batch_size,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_p=top_p,
            with_base_model=with_base_model,
            merge_adapter=merge_adapter,
        ).set_display_name("Inference")
        _gpu_task(inference, settings)

        evaluation = components.evaluation(
            predictions=inference.outputs["predictions"],
            base_predictions=inference.outputs["base_predictions"],
            metric_names=evaluation_metrics,
        ).set_display_name("Evaluation (ragas)")

        components.report(
            evaluation_results=evaluation.outputs["evaluation_results"],
            evaluation_metrics=evaluation.outputs["metrics"],
            training_metrics=fine_tuning.outputs["metrics"],
            model=fine_tuning.outputs["model"],
        ).set_display_name("Report")

        gate = components.gate(
            evaluation_metrics=evaluation.outputs["metrics"],
            metric=gate_metric,
            min_uplift_vs_base=gate_min_uplift_vs_base,
            min_uplift_vs_echo=gate_min_uplift_vs_echo,
            min_score=gate_min_score,
        ).set_display_name("Quality gate")

        with dsl.If(gate.outputs["passed"] == True, name="gate-passed"):  # noqa: E712
            components.register(
                model=fine_tuning.outputs["model"],
                evaluation_metrics=evaluation.outputs["metrics"],
                project_id=project_id,
                region=region,
                display_name=registry_model_name,
                metric=gate_metric,
            ).set_display_name("Register in Model Registry")

    return model_training_pipeline
