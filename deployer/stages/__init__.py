"""Stages of a deploy: orchestrate the model and the adapters."""
