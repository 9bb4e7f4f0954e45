"""Training runs: ``python -m study.train run.out=<folder> seed=<k> [overrides...]`` for one;
``python -m study.train [shared overrides] -- <run 1's overrides> -- <run 2's> ...`` for several
in one process (each run's overrides after the shared ones; see study.training.batch).

The command line of :func:`study.training.run.train_run`: Hydra composes the config, the run logs
to ``run.out/train.log``, and a bad config or missing data ends the job with one ``error:`` line.

The job imports torch and the config library only (no pandas, no plotting): start-up time is paid
once per run, hundreds of times per study.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig

from study.components.data import DataError
from study.config import CONF_DIR, ConfigError
from study.startup import exit_job
from study.training.run import train_run

log = logging.getLogger("study.train")


def setup_logging(out: Path, verbose: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    # A run resuming from its checkpoint keeps the log of the part before the interruption.
    resuming = (out / "checkpoint.pt").exists()
    file_handler = logging.FileHandler(out / "train.log", mode="a" if resuming else "w")
    console = logging.StreamHandler(sys.stderr)
    for handler in (file_handler, console):
        handler.setFormatter(fmt)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    log.handlers[:] = [file_handler, console]
    log.setLevel(logging.INFO)
    log.propagate = False


def run(cfg: DictConfig) -> int:
    if not cfg.run.out:
        print("error: run.out is not set; pass run.out=<run folder>", file=sys.stderr)
        return 2
    out = Path(cfg.run.out)
    setup_logging(out, cfg.run.get("verbose", True))
    try:
        train_run(cfg)
    except (ConfigError, DataError) as err:
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def run_batch(shared: list[str], members) -> int:
    """The runs one after another; every run is attempted, the job fails if any did."""
    from study.training import batch

    failed = 0
    for member in members:
        try:
            cfg = batch.member_config(shared, member)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        if cfg.run.out and batch.is_complete(cfg):
            print(f"{cfg.run.out}: finished earlier, skipped", file=sys.stderr)
            continue
        batch.reset_process_state(cfg.threads)
        failed += run(cfg) != 0
    return 1 if failed else 0


def main() -> None:
    if "--" in sys.argv[1:]:
        from study.training.batch import split_members

        shared, members = split_members(sys.argv[1:])
        exit_job(run_batch(shared, members))
    import hydra

    # Hydra's own logging files and output folders are switched off: the run writes only run.out.
    sys.argv += [
        "hydra/job_logging=none",
        "hydra/hydra_logging=none",
    ]
    app = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(
        lambda cfg: exit_job(run(cfg))
    )
    app()


if __name__ == "__main__":
    main()
