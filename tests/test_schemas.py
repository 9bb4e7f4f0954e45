"""The JSON Schemas of schemas/: valid, in step with the code, and accepting the study's own files;
a violation is one line naming the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from snakemake.utils import validate as snakemake_validate

from study.analysis.ledger.evaluate import SPECIAL
from study.config import SCALES
from study.schemas import SCHEMA_DIR, DocumentError, validate_document, validator

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("workflow", "ablation", "claims", "course_statements")
# Keywords that can refuse a value: a node holding one says how to fix it (x-fix).
CONSTRAINTS = {"type", "enum", "const", "pattern", "minimum", "maximum", "exclusiveMinimum",
               "minItems", "minLength", "minProperties", "oneOf", "anyOf", "not"}  # fmt: skip


def schema(name: str) -> dict:
    return yaml.safe_load((SCHEMA_DIR / f"{name}.schema.yaml").read_text())


def nodes(node, where="#"):
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from nodes(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from nodes(value, f"{where}/{i}")


@pytest.mark.parametrize("name", NAMES)
def test_each_schema_is_draft_2020_12_and_documents_its_keys(name):
    s = schema(name)
    Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for where, node in nodes(s):
        if "if" in where.split("/"):  # an if only selects a branch by a key documented elsewhere
            continue
        for key, sub in (node.get("properties") or {}).items():
            if isinstance(sub, dict):  # a $ref takes the description of what it names
                assert sub.get("description") or "$ref" in sub, f"{name}: {where}/properties/{key}"
    for key, sub in s.get("$defs", {}).items():
        assert sub.get("description"), f"{name}: #/$defs/{key}"


@pytest.mark.parametrize("name", NAMES)
def test_every_node_that_can_refuse_a_value_names_the_fix(name):
    for where, node in nodes(schema(name)):
        # Subschemas of if/oneOf/anyOf/not only select; their parent node holds the fix.
        if any(part in where.split("/") for part in ("if", "oneOf", "anyOf", "not")):
            continue
        if CONSTRAINTS & node.keys():
            assert "x-fix" in node, f"{name}: {where}"


@pytest.mark.parametrize("path", sorted((ROOT / "conf/ablation").glob("*.yaml")), ids=str)
def test_ablation_schema_accepts_every_committed_ablation(path):
    validate_document(yaml.safe_load(path.read_text()), "ablation", path)


def test_claims_schema_accepts_the_committed_ledger():
    path = ROOT / "conf/claims.yaml"
    validate_document(yaml.safe_load(path.read_text()), "claims", path)


def test_workflow_schema_accepts_the_committed_config_and_fills_defaults():
    config = yaml.safe_load((ROOT / "conf/workflow.yaml").read_text())
    validate_document(config, "workflow", "conf/workflow.yaml")
    del config["scale"], config["train_threads"]
    snakemake_validate(config, schema=str(SCHEMA_DIR / "workflow.schema.yaml"))
    assert (config["scale"], config["train_threads"]) == ("default", 1)


def test_schemas_list_the_names_the_code_knows():
    assert sorted(schema("workflow")["properties"]["scale"]["enum"]) == sorted(SCALES)
    special = schema("claims")["$defs"]["special"]["properties"]["check"]["enum"]
    assert special == list(SPECIAL)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"seeds": 3.0}, "x.yaml: seeds=3.0 must be an integer from 1 to 100"),
        ({"variants": {"drop": "model.dropout=0.5"}},
         "x.yaml (variant 'drop'): variants.drop='model.dropout=0.5' must be a list of Hydra "
         "overrides such as [model.dropout=0.5]"),
        ({"tune": {"factors": [1, float("inf")]}},
         "x.yaml: tune.factors[1]=inf must be a positive (finite) number"),
        (
            {"shift": "yes"},
            "x.yaml: shift='yes' must be true, false or a list of variant names,"
            " e.g. [batchnorm, batchrenorm]",
        ),
    ],
)  # fmt: skip
def test_first_violation_is_one_line_naming_file_key_and_fix(data, message):
    good = {"title": "T", "question": "Q?", "baseline": "drop", "seeds": 1}
    with pytest.raises(DocumentError) as err:
        validate_document({**good, **data}, "ablation", "x.yaml")
    assert str(err.value) == message


def test_each_schema_is_compiled_once():
    assert validator("ablation") is validator("ablation")
