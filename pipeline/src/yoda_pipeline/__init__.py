"""The Yoda fine-tuning pipeline: settings, image lock, container components, wiring, runs."""
