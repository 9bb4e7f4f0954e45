"""Ablation files: expansion into runs, and one clear error for every kind of malformed file."""

from __future__ import annotations

import textwrap

import pytest

from study.planning.ablation import (
    AblationError,
    comparisons,
    grid_variants,
    load_ablation,
    load_ablations,
    plan,
    spread,
)
from study.planning.search import TUNING_SEED

# The default scale's final seeds start at plan.first_seed (the confirmatory study's fresh base).
F = 300

GOOD = """
title: Tiny
question: Does dropout help?
baseline: none
seeds: 3
common: [optim=adamw]
variants:
  none: []
  dropout: [model.dropout=0.5]
"""


def write(tmp_path, text, name="tiny.yaml"):
    folder = tmp_path / "ablation"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))
    return folder


def test_plan_expands_variants_and_caps_seeds_by_scale(tmp_path):
    folder = write(tmp_path, GOOD)
    default = plan(folder, "default")
    assert [(r.variant, r.seed) for r in default.runs] == [
        ("none", F), ("none", F + 1), ("none", F + 2),
        ("dropout", F), ("dropout", F + 1), ("dropout", F + 2),
    ]  # fmt: skip
    assert default.runs[3].overrides == ("scale=default", "optim=adamw", "model.dropout=0.5")
    assert default.runs[0].folder == f"runs/tiny/none/seed{F}"
    smoke = plan(folder, "smoke")
    assert len(smoke.runs) == 4  # smoke runs two seeds


def test_variants_of_a_claim_that_needs_power_get_their_own_seeds(tmp_path):
    folder = write(tmp_path, GOOD + "seeds_by_variant: {dropout: 7}\n")
    seeds = {}
    for r in plan(folder, "default").runs:
        seeds.setdefault(r.variant, []).append(r.seed)
    assert seeds == {"none": [F, F + 1, F + 2], "dropout": list(range(F, F + 7))}
    # the scale still bounds them: smoke runs two of each, full at least five and at most 12
    smoke = [(r.variant, r.seed) for r in plan(folder, "smoke").runs]
    assert smoke == [("none", 0), ("none", 1), ("dropout", 0), ("dropout", 1)]
    folder = write(tmp_path, GOOD + "seeds_by_variant: {dropout: 40}\n")
    full = [r.variant for r in plan(folder, "full").runs]
    assert full.count("none") == 5 and full.count("dropout") == 12


def test_grid_is_a_cartesian_product_with_readable_names(tmp_path):
    folder = write(
        tmp_path,
        """
        title: Grid
        question: q
        baseline: optim-sgd_lr-0.1
        seeds: 1
        grid: {optim: [sgd, adam], optim.lr: [0.1, 0.01]}
        """,
    )
    p = plan(folder, "default")
    first_seed = [r for r in p.runs if r.seed == F]
    assert [r.variant for r in first_seed] == [
        "optim-sgd_lr-0.1", "optim-sgd_lr-0.01", "optim-adam_lr-0.1", "optim-adam_lr-0.01"
    ]  # fmt: skip
    assert first_seed[3].overrides[-2:] == ("optim=adam", "optim.lr=0.01")
    # seeds: 1 is raised to the default scale's floor of 3 (conf/scale/default.yaml)
    assert len(p.runs) == 4 * 3


def test_tuning_grid_is_log_spaced_around_each_optimizer_default(tmp_path):
    folder = write(
        tmp_path,
        """
        title: Opt
        question: q
        baseline: sgd
        seeds: 2
        variants: {sgd: [optim=sgd], adam: [optim=adam]}
        tune: {key: optim.lr, factors: [0.1, 1, 10], metric: val_loss}
        """,
    )
    p = plan(folder, "default")
    lrs = {(t.variant, t.value) for t in p.tuning}
    assert lrs == {("sgd", 0.01), ("sgd", 0.1), ("sgd", 1.0), ("adam", 0.0001), ("adam", 0.001),
                   ("adam", 0.01)}  # fmt: skip
    assert all(r.tuned for r in p.runs)
    # Tuning seeds are never final seeds: selection noise does not carry into the results.
    # (seeds: 2 is raised to the default scale's floor of 3)
    assert {t.seed for t in p.tuning} == {TUNING_SEED} and {r.seed for r in p.runs} == {
        F,
        F + 1,
        F + 2,
    }
    assert p.tuning[0].folder == f"tune/tiny/sgd/lr-0.01/seed{TUNING_SEED}"
    assert spread([1, 2, 3, 4, 5, 6, 7], 3) == [1, 4, 7]


def test_the_studys_own_ablations_plan_at_every_scale(root):
    ablations = load_ablations(root / "conf/ablation")
    for scale in ("smoke", "default", "full"):
        p = plan(root / "conf/ablation", scale)
        assert p.runs, scale
        names = {r.ablation for r in p.runs}
        runs_here = {n for n, a in ablations.items() if a.scales is None or scale in a.scales}
        assert names == runs_here, scale
    assert "data_size" in ablations and ablations["data_size"].scales == ["full"]


def test_every_regularizer_is_tuned_like_the_learning_rates(root):
    p = plan(root / "conf/ablation", "default")
    searched = {(t.variant, t.key) for t in p.tuning if t.ablation == "regularization"}
    assert ("dropout", "model.dropout") in searched and ("l2", "regularization.l2") in searched
    points = [t.value for t in p.tuning if (t.ablation, t.variant) == ("regularization", "cutout")]
    assert points == [2, 4, 6, 10, 14]  # integer sizes stay integers
    untuned = {r.variant for r in p.runs if r.ablation == "regularization" and not r.tuned}
    assert untuned == {"none", "constant_lr", "early_stopping", "in_practice"}


SOURCE = """
title: Optimizers
question: q
baseline: sgd
seeds: 1
variants: {sgd: [optim=sgd], lion: [optim=lion]}
tune: {key: optim.lr, factors: [0.1, 1, 10]}
"""

BORROWER = """
title: Grid
question: q
baseline: optim-sgd_schedule-constant
seeds: 1
tuned_from: {ablation: source, by: optim.name}
grid: {optim: [sgd, lion], schedule: [constant, cosine]}
compare: [[optim-sgd_schedule-constant, optim-sgd_schedule-cosine]]
"""


def test_tuned_from_takes_each_cell_from_the_source_ablations_selection(tmp_path):
    write(tmp_path, SOURCE, "source.yaml")
    folder = write(tmp_path, BORROWER, "grid.yaml")
    p = plan(folder, "default")
    grid = {r.variant: r.selection for r in p.runs_of("grid") if r.seed == F}
    assert grid == {
        "optim-sgd_schedule-constant": ("source", "sgd"),
        "optim-sgd_schedule-cosine": ("source", "sgd"),
        "optim-lion_schedule-constant": ("source", "lion"),
        "optim-lion_schedule-cosine": ("source", "lion"),
    }
    assert all(r.tuned for r in p.runs_of("grid"))
    assert not [t for t in p.tuning if t.ablation == "grid"]  # the source's budget, reused
    own = {r.variant: r.selection for r in p.runs_of("source") if r.seed == F}
    assert own["lion"] == ("source", "lion")


@pytest.mark.parametrize(
    "source, borrower, message",
    [
        (SOURCE.replace("tune: {key: optim.lr, factors: [0.1, 1, 10]}", ""), BORROWER,
         "tuned_from names ablation 'source', which has no tune block"),
        (SOURCE, BORROWER.replace("[sgd, lion]", "[sgd, adam]"),
         r"grid.yaml \(variant 'optim-adam_schedule-constant'\): tuned_from: optim.name=adam "
         "names no tuned variant of 'source'"),
        (SOURCE, BORROWER + "tune: {factors: [0.1, 1]}\n", "has both tune and tuned_from"),
        (SOURCE, BORROWER.replace("by: optim.name", "by: optim"), "tuned_from.by"),
    ],
)  # fmt: skip
def test_a_tuned_from_without_a_tuned_source_entry_stops_the_plan(
    tmp_path, source, borrower, message
):
    write(tmp_path, source, "source.yaml")
    folder = write(tmp_path, borrower, "grid.yaml")
    with pytest.raises(AblationError, match=message):
        plan(folder, "default")


def test_the_optimizer_schedule_grid_runs_the_newer_optimizers_at_their_tuned_rates(root):
    p = plan(root / "conf/ablation", "default")
    grid = p.ablations["optimizer_schedule"]
    cells = {r.variant: r.selection for r in p.runs_of("optimizer_schedule")}
    assert len(cells) == 4 * 3 + 2 + 1 and len(p.runs_of("optimizer_schedule")) == 15 * 3
    # Muon's piecewise cell and SOAP's cells are left out for time; schedule-free AdamW has its
    # constant rate only.
    assert "optim-muon_schedule-piecewise" not in cells
    assert not [c for c in cells if "soap" in c]
    schedule_free = [v for v in cells if "schedulefree" in v]
    assert schedule_free == ["optim-adamw_schedulefree_schedule-constant"]
    for variant, (source, entry) in cells.items():
        assert source == "optimizers" and variant.startswith(f"optim-{entry}_schedule-"), variant
    tuned = p.ablations["optimizers"].tune["searches"]
    assert {entry for _, entry in cells.values()} <= set(tuned)
    pairs = comparisons(grid)
    assert ("optim-muon_schedule-constant", "optim-muon_schedule-cosine") in pairs
    assert ("optim-sgd_schedule-constant", "optim-muon_schedule-constant") in pairs
    assert ("optim-sgd_schedule-constant", "optim-adamw_schedulefree_schedule-constant") in pairs
    assert {v for _, v in pairs} == set(cells) - {grid.baseline}


TWO_FACTORS = """
title: Tiny
question: Does dropout help?
baseline: none
seeds: 1
variants:
  none: []
  dropout: [model.dropout=0.5]
  dropout_small: [model.dropout=0.5, train.batch_size=8, train.epochs=3]
  renorm_small: [model.norm=batchrenorm, train.batch_size=8, train.epochs=3]
  bn_small: [model.norm=batchnorm, model.batchnorm.momentum=0.01, train.batch_size=8,
             train.epochs=3]
"""


def test_a_confounded_comparison_is_refused_with_the_keys_that_differ(tmp_path):
    text = TWO_FACTORS + "compare: [[none, dropout], [dropout, dropout_small]]\n"
    with pytest.raises(AblationError) as err:
        plan(write(tmp_path, text), "default")
    assert str(err.value) == (
        f"{tmp_path / 'ablation' / 'tiny.yaml'}: comparison dropout vs dropout_small differs in "
        "more than one factor (train.batch_size, train.epochs): keys ['train.batch_size', "
        "'train.epochs']; make the two variants differ in one technique, declare its factor "
        "keys, or drop the pair from compare"
    )


def test_without_compare_every_variant_is_checked_against_the_baseline(tmp_path):
    with pytest.raises(AblationError, match="none vs dropout_small differs in more than one"):
        plan(write(tmp_path, TWO_FACTORS), "default")


def test_pairs_that_differ_in_one_technique_plan_and_are_what_tables_compare(tmp_path):
    text = TWO_FACTORS + "compare: [[none, dropout], [bn_small, renorm_small, dropout_small]]\n"
    with pytest.raises(AblationError, match=r"bn_small vs dropout_small differs in more than one "
                       r"factor \(dropout, normalization\)"):  # fmt: skip
        plan(write(tmp_path, text), "default")
    text = TWO_FACTORS + "compare: [[none, dropout], [bn_small, renorm_small]]\n"
    folder = write(tmp_path, text)
    assert len(plan(folder, "default").runs) == 5 * 3  # 5 variants at the default floor of 3
    ablation = load_ablation(folder / "tiny.yaml")
    assert comparisons(ablation) == [("none", "dropout"), ("bn_small", "renorm_small")]


def test_a_setting_inside_two_norms_is_compared_as_their_layers_use_it(tmp_path):
    # BatchNorm's moving averages at torch's 0.1, Batch Renorm's at its own 0.01: both infer with
    # them, so the pair differs in the norm and in the momentum; only the norm is a key that
    # differs, the momentum is a default inside each layer
    hidden = TWO_FACTORS.replace("model.batchnorm.momentum=0.01, ", "")
    text = hidden + "compare: [[none, dropout], [bn_small, renorm_small]]\n"
    with pytest.raises(
        AblationError,
        match=r"bn_small vs renorm_small differs in more than one factor "
        r"\(model.norm\[momentum\], normalization\)",
    ):
        plan(write(tmp_path, text), "default")
    # declared as a factor, the pair measures the two together
    declared = hidden + (
        "compare:\n  - [none, dropout]\n  - variants: [bn_small, renorm_small]\n"
        "    factor: [model.norm, 'model.norm[momentum]']\n"
    )
    assert plan(write(tmp_path, declared), "default").runs
    # a setting only one norm uses (Batch Renorm's r_max) is its own, never compared
    own = TWO_FACTORS.replace(
        "model.norm=batchrenorm,", "model.norm=batchrenorm, model.renorm.r_max=2,"
    )
    assert plan(write(tmp_path, own + "compare: [[bn_small, renorm_small]]\n"), "default").runs


def test_the_studys_normalization_pairs_as_they_were_are_refused(root, tmp_path):
    text = (root / "conf/ablation/normalization.yaml").read_text()
    before = text.replace(", model.batchnorm.momentum=0.01]", "]")  # torch's 0.1 for BatchNorm
    assert before != text
    with pytest.raises(AblationError, match=r"batchnorm vs batchrenorm differs in more than one "
                       r"factor \(model.norm\[momentum\], normalization\)"):  # fmt: skip
        plan(write(tmp_path, before, "normalization.yaml"), "default")


def test_the_studys_normalization_pairs_use_one_momentum(root):
    from study.components.norms import effective_settings
    from study.config import compose

    ablation = load_ablation(root / "conf/ablation/normalization.yaml")
    for ref, variant in comparisons(ablation):
        settings = [
            effective_settings(
                compose(["scale=default", *ablation.common, *ablation.variants[v]]).model
            )
            for v in (ref, variant)
        ]
        shared = set(settings[0]) & set(settings[1])
        assert {k: settings[0][k] for k in shared} == {k: settings[1][k] for k in shared}
        assert settings[0].get("momentum", 0.01) == 0.01


SCALED = """
title: Batch size
question: Does scaling the rate with the batch keep the result?
baseline: small
seeds: 1
common: [optim=sgd]
variants:
  small: [train.batch_size=128, optim.lr=0.1]
  large: [train.batch_size=512, optim.lr=0.1]
  large_scaled: [train.batch_size=512, optim.lr=0.4]
"""


def test_a_variant_may_have_two_references_each_one_factor(tmp_path):
    # large_scaled against large: the rate alone; against small: the batch size and the rate,
    # declared as the linear scaling rule's one factor
    text = SCALED + (
        "compare:\n  - [large, large_scaled]\n"
        "  - {variants: [small, large, large_scaled], factor: [train.batch_size, optim.lr]}\n"
    )
    folder = write(tmp_path, text)
    assert plan(folder, "default").runs
    pairs = comparisons(load_ablation(folder / "tiny.yaml"))
    assert pairs == [("large", "large_scaled"), ("small", "large"), ("small", "large_scaled")]
    # each pair is checked on its own: undeclared, small vs large_scaled is two factors
    two = SCALED + "compare: [[large, large_scaled], [small, large, large_scaled]]\n"
    with pytest.raises(AblationError, match="small vs large_scaled differs in more than one"):
        plan(write(tmp_path, two), "default")


def test_a_declared_factor_allows_a_recipe_and_nothing_outside_it(tmp_path):
    recipe = "compare:\n  - variants: [none, dropout_small]\n    factor: [model.dropout, train]\n"
    assert plan(write(tmp_path, TWO_FACTORS + recipe), "default").runs
    narrow = recipe.replace("[model.dropout, train]", "[model.dropout, train.epochs]")
    with pytest.raises(
        AblationError, match=r"outside its declared factor .* \['train.batch_size'\]"
    ):
        plan(write(tmp_path, TWO_FACTORS + narrow), "default")


def test_a_full_scale_only_ablation_is_checked_but_not_run_elsewhere(tmp_path):
    folder = write(tmp_path, GOOD + "scales: [full]\n")
    # full runs its floor of 5 seeds for each of the 2 variants
    assert plan(folder, "default").runs == [] and len(plan(folder, "full").runs) == 2 * 5
    bad = write(tmp_path, GOOD.replace("model.dropout=0.5", "model.dropout=2") + "scales: [full]\n")
    with pytest.raises(AblationError, match="model.dropout"):
        plan(bad, "default")


BAD = {
    "unknown optimizer": (GOOD.replace("optim=adamw", "optim=adamx"), "no such optim option"),
    "unknown schedule": (GOOD.replace("[optim=adamw]", "[schedule=warp]"), "no such schedule"),
    "negative learning rate": (
        GOOD.replace("[optim=adamw]", "[optim.lr=-0.1]"),
        "optim.lr must be a finite positive number",
    ),
    "non-numeric learning rate": (
        GOOD.replace("[optim=adamw]", "[optim.lr=fast]"),
        "optim.lr must be a finite positive number",
    ),
    "dropout of one": (
        GOOD.replace("model.dropout=0.5", "model.dropout=1.0"),
        "model.dropout=1.0 is invalid",
    ),
    "unknown config key": (
        GOOD.replace("model.dropout=0.5", "model.dropot=0.5"),
        "did you mean model.dropout",
    ),
    "bad override syntax": (GOOD.replace("model.dropout=0.5", "model.dropout"), "key=value"),
    "override that adds a key": (GOOD.replace("model.dropout=0.5", "+model.extra=1"), "adds"),
    "missing baseline key": (GOOD.replace("baseline: none\n", ""), "missing key 'baseline'"),
    "baseline that is not a variant": (
        GOOD.replace("baseline: none", "baseline: nothing"),
        "baseline 'nothing' is not a variant",
    ),
    "empty variants": (
        GOOD.split("variants:")[0] + "variants: {}\n",
        "no variants",
    ),
    "duplicate variants": (
        GOOD + "  dropout_again: [model.dropout=0.5]\n",
        "same overrides as variant 'dropout'",
    ),
    "duplicate YAML key": (GOOD + "  dropout: [model.dropout=0.2]\n", "duplicate key 'dropout'"),
    "variant name with path characters": (
        GOOD.replace("  dropout:", "  ../escape:"),
        "is not a slug",
    ),
    "variant name with markup": (GOOD.replace("  dropout:", "  <script>:"), "is not a slug"),
    "seeds not a number": (GOOD.replace("seeds: 3", "seeds: three"), "seeds='three'"),
    "zero seeds": (GOOD.replace("seeds: 3", "seeds: 0"), "must be an integer from 1 to 100"),
    "YAML that does not parse": (GOOD + "variants: [unclosed\n", "YAML does not parse"),
    "YAML that is not a mapping": ("- just\n- a list\n", "must be a YAML mapping"),
    "typo in a top-level key": (GOOD.replace("question:", "questoin:"), "did you mean 'question'"),
    "overrides not a list": (
        GOOD.replace("[model.dropout=0.5]", "model.dropout=0.5"),
        "must be a list",
    ),
    "unknown norm": (GOOD.replace("model.dropout=0.5", "model.norm=batchnrom"), "model.norm"),
    "compare naming no variant": (GOOD + "compare: [[none, drop]]\n", "compare names 'drop'"),
    "the same pair twice": (
        GOOD + "compare: [[none, dropout], [none, dropout]]\n",
        "compare measures 'dropout' against 'none' twice; list each pair once",
    ),
    "unknown scale": (GOOD + "scales: [laptop]\n", "scales"),
    "tune of a variant that does not exist": (
        GOOD + "tune: {variants: {droput: {key: model.dropout, values: [0.1, 0.5]}}}\n",
        "tune.variants names ['droput']",
    ),
    "tune factors not positive": (
        GOOD + "tune: {key: optim.lr, factors: [0, 1], metric: val_loss}\n",
        "tune.factors",
    ),
    "seeds of an unknown variant": (
        GOOD + "seeds_by_variant: {droput: 5}\n",
        "seeds_by_variant names ['droput'], which are not variants",
    ),
    "shift of an unknown variant": (
        GOOD + "shift: [droput]\n",
        "shift names ['droput'], which are not variants",
    ),
    "shift neither a flag nor a list": (GOOD + "shift: sometimes\n", "shift"),
    "seeds of a variant not a count": (
        GOOD + "seeds_by_variant: {dropout: many}\n",
        "seeds_by_variant",
    ),
    "override of hydra itself": (
        GOOD.replace("model.dropout=0.5", "hydra.run.dir=/tmp"),
        "changes Hydra itself",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_ablation_is_one_clear_error_naming_the_file(tmp_path, case):
    text, expected = BAD[case]
    folder = write(tmp_path, text)
    with pytest.raises(AblationError) as err:
        plan(folder, "default")
    message = str(err.value)
    assert "tiny.yaml" in message, message
    assert expected in message, message
    assert "\n" not in message.strip(), message


def test_error_names_the_variant_at_fault(tmp_path):
    folder = write(tmp_path, GOOD.replace("model.dropout=0.5", "model.dropout=2"))
    with pytest.raises(AblationError, match=r"tiny.yaml \(variant 'dropout'\)"):
        plan(folder, "default")


def test_bad_file_name_is_refused(tmp_path):
    folder = write(tmp_path, GOOD, name="My Ablation.yaml")
    with pytest.raises(AblationError, match="is not a slug"):
        plan(folder, "default")


def test_grid_names_are_slugs():
    names = grid_variants(
        "x.yaml", {"model.norm": ["batchnorm", "none"], "train.early_stopping": [True]}
    )
    assert list(names) == ["norm-batchnorm_early_stopping-true", "norm-none_early_stopping-true"]


def test_shift_scores_the_variants_it_names_and_every_variant_when_true(tmp_path):
    for sub in ("listed", "every", "none"):
        (tmp_path / sub).mkdir()
    listed = plan(write(tmp_path / "listed", GOOD + "shift: [dropout]\n"), "default")
    assert [a.shift for a in listed.ablations.values()] == [("dropout",)]
    every = plan(write(tmp_path / "every", GOOD + "shift: true\n"), "default")
    assert [set(a.shift) for a in every.ablations.values()] == [{"none", "dropout"}]
    assert [
        a.shift for a in plan(write(tmp_path / "none", GOOD), "default").ablations.values()
    ] == [()]
