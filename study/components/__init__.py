"""Components the study builds by name.

Data, models, layers, optimizers, schedules, regularizers, augmentations and corruptions.
"""
