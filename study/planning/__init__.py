"""From ablation files to runs: planning and learning-rate tuning."""
