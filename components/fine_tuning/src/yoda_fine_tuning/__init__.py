"""Step 2 of the Yoda pipeline: LoRA fine-tuning (QLoRA on GPU) with trl's SFTTrainer."""
