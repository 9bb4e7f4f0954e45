"""One training run: the orchestrator and its steps."""
