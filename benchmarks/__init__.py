"""The study's performance benchmark: throughput, start-up, planning and pipeline efficiency.

Run from the repository root as ``python -m benchmarks``; see ``benchmarks/__main__.py`` and
docs/performance.md. It measures the ``study`` package from outside: the package never imports
it, and it is not installed with the package.
"""
