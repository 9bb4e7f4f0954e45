"""The claims file (conf/claims.yaml): read it and check every claim before any is evaluated.

What each claim may hold is schemas/claims.schema.yaml; the one thing a schema cannot check, that
no two claims share an id, is checked here. A malformed file is one line naming the file, the
claim and the fix. The workflow runs this check when it plans (rules/common.smk), so a malformed
claims file stops ``snakemake -n`` before anything trains.
"""

from __future__ import annotations

from pathlib import Path

from study.errors import ConfigError
from study.planning.yaml_file import YamlFileError, read_yaml
from study.schemas import DocumentError, validate_document


class ClaimsError(ConfigError):
    """A malformed claims file or claim input; one line naming the file and the claim."""


def load_claims(path: Path) -> list[dict]:
    path = Path(path)
    try:
        data = read_yaml(path)
    except YamlFileError as err:
        raise ClaimsError(f"{err}; fix the claims file there") from None
    try:
        validate_document(data, "claims", path)
    except DocumentError as err:
        raise ClaimsError(str(err)) from None
    seen = set()
    for claim in data["claims"]:
        if claim["id"] in seen:
            raise ClaimsError(f"{path}: claim {claim['id']}: duplicate id; give each claim its own")
        seen.add(claim["id"])
        # a ratio judged as a difference is judged on the log scale: its margin is a factor > 1
        log_ratio = claim.get("check") in (
            "second_order_iterations",
            "second_order_step_time",
            "pathology_ratio",
        )
        if log_ratio and claim["margin"] <= 1:
            raise ClaimsError(
                f"{path}: claim {claim['id']}: margin={claim['margin']} is a ratio (unit x) and "
                "must be above 1, e.g. 2 for twice"
            )
    return data["claims"]


def load_ledger_history(path: Path) -> list[dict]:
    """The study-wide changes made after results had been seen (the claims file's top-level
    ``history``), oldest first; checked with the claims."""
    load_claims(path)
    return list(read_yaml(Path(path)).get("history") or [])
