"""A reproducible study of how neural networks are trained."""
