"""Hyperparameter selection: the best smoothed validation score over seeds wins, divergence ranks
last, edges are flagged, and any config key can be the one searched."""

from __future__ import annotations

import json

import pytest

from study.planning.tuning import main, read_point, select


def point(variant, lr, val_loss, status="ok", val_acc=0.5, seed=1000, key="optim.lr"):
    return {
        "variant": variant,
        "key": key,
        "value": lr,
        "seed": seed,
        "status": status,
        "val_loss": val_loss,
        "val_acc": val_acc,
    }


def test_lowest_validation_loss_wins_and_interior_winner_is_not_at_edge():
    pts = [point("sgd", 0.01, 0.9), point("sgd", 0.1, 0.4), point("sgd", 1.0, 0.7)]
    chosen = select(pts)["sgd"]
    assert chosen["lr"] == 0.1 and chosen["chosen"] == 0.1 and chosen["key"] == "optim.lr"
    assert not chosen["at_edge"] and not chosen["all_diverged"]


def test_winner_on_the_grid_edge_is_flagged():
    pts = [
        point("adam", 0.001, 0.3),
        point("adam", 0.01, 0.5),
        point("adam", 0.1, None, "diverged"),
    ]
    chosen = select(pts)["adam"]
    assert chosen["lr"] == 0.001 and chosen["at_edge"]
    assert chosen["diverged"] == [0.1]


def test_a_winner_at_zero_is_the_end_of_its_range_not_a_grid_edge():
    # A shift of 0 pixels (flips alone) cannot be extended below: flagged as the range's end, not
    # as an edge that may hide the optimum. The same winner at 1, the lowest of a grid that could
    # go lower, is an edge.
    acc = {0: 0.87, 1: 0.86, 2: 0.84}
    pts = [point("aug", v, 0.4, val_acc=a, key="augment.shift") for v, a in acc.items()]
    chosen = select(pts, "val_acc")["aug"]
    assert chosen["chosen"] == 0 and not chosen["at_edge"] and chosen["edge"] == "range end"
    above = [point("aug", v + 1, 0.4, val_acc=a, key="augment.shift") for v, a in acc.items()]
    chosen = select(above, "val_acc")["aug"]
    assert chosen["chosen"] == 1 and chosen["at_edge"] and chosen["edge"] == "lowest"


def test_diverged_points_rank_last_even_with_a_small_recorded_loss():
    pts = [point("sgd", 0.1, 0.8), point("sgd", 1.0, 0.01, "diverged")]
    assert select(pts)["sgd"]["lr"] == 0.1


def test_all_diverged_falls_back_to_the_smallest_rate_and_says_so():
    pts = [point("sgd", 1.0, None, "diverged"), point("sgd", 10.0, None, "diverged")]
    chosen = select(pts)["sgd"]
    assert chosen["lr"] == 1.0 and chosen["all_diverged"] and chosen["value"] is None


def test_accuracy_metric_prefers_higher():
    pts = [point("sgd", 0.1, 0.5, val_acc=0.8), point("sgd", 0.3, 0.4, val_acc=0.7)]
    assert select(pts, "val_acc")["sgd"]["lr"] == 0.1
    assert select(pts, "val_acc")["sgd"]["value"] == 0.8
    assert select(pts, "val_loss")["sgd"]["lr"] == 0.3


def test_seeds_are_averaged_and_one_diverged_seed_sinks_the_point():
    pts = [
        point("sgd", 0.1, 0.30, seed=1000), point("sgd", 0.1, 0.70, seed=1001),  # mean 0.50
        point("sgd", 0.3, 0.45, seed=1000), point("sgd", 0.3, 0.45, seed=1001),  # mean 0.45
        point("sgd", 1.0, 0.10, seed=1000), point("sgd", 1.0, None, "diverged", seed=1001),
    ]  # fmt: skip
    chosen = select(pts)["sgd"]
    assert chosen["lr"] == 0.3 and chosen["value"] == pytest.approx(0.45)
    assert chosen["n_seeds"] == 2 and chosen["diverged"] == [1.0]


def test_a_regularizer_strength_is_selected_like_a_learning_rate():
    pts = [point("dropout", p, loss, key="model.dropout") for p, loss in ((0.1, 0.5), (0.3, 0.4))]
    chosen = select(pts)["dropout"]
    assert (chosen["key"], chosen["chosen"], chosen["lr"]) == ("model.dropout", 0.3, None)
    assert chosen["at_edge"]  # the best of two points is always on an edge


def write_run(folder, variant, config, val_losses, status="ok"):
    folder.mkdir(parents=True)
    metrics = {"variant": variant, "seed": 1000, "status": status, "config": config}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    rows = ["epoch,val_loss,val_acc"] + [f"{i + 1},{v},0.8" for i, v in enumerate(val_losses)]
    (folder / "history.csv").write_text("\n".join(rows) + "\n")
    return folder / "metrics.json"


def test_the_score_is_the_mean_of_the_last_epochs_not_the_last_one(tmp_path):
    # A one-epoch dip at the end (0.30) would win on the last epoch alone; over 3 epochs it loses.
    noisy = write_run(tmp_path / "a", "rmsprop", {"optim": {"lr": 1e-4}}, [0.9, 0.5, 0.52, 0.30])
    steady = write_run(tmp_path / "b", "rmsprop", {"optim": {"lr": 1e-3}}, [0.9, 0.40, 0.40, 0.40])
    assert read_point(noisy, last=1)["val_loss"] == pytest.approx(0.30)
    assert read_point(noisy, last=3)["val_loss"] == pytest.approx((0.5 + 0.52 + 0.30) / 3)
    assert select([read_point(p, last=1) for p in (noisy, steady)])["rmsprop"]["lr"] == 1e-4
    assert select([read_point(p, last=3) for p in (noisy, steady)])["rmsprop"]["lr"] == 1e-3


def test_command_line_writes_json_and_csv(tmp_path):
    files = []
    for p, loss in ((0.1, 0.6), (0.3, 0.4), (0.5, 0.9)):
        config = {"model": {"dropout": p}, "optim": {"lr": 0.001}}
        files.append(str(write_run(tmp_path / f"dropout-{p}", "dropout", config, [loss] * 3)))
    out = tmp_path / "selection" / "reg.json"
    assert main(["--last", "2", "--key", "dropout=model.dropout", "--out", str(out), *files]) == 0
    chosen = json.loads(out.read_text())["dropout"]
    assert (chosen["key"], chosen["chosen"], chosen["last_epochs"]) == ("model.dropout", 0.3, 2)
    lines = out.with_suffix(".csv").read_text().splitlines()
    assert lines[0].startswith("variant,key,grid,chosen,lr,metric,value,at_edge,edge")
    assert lines[1].startswith("dropout,model.dropout,0.1 0.3 0.5,0.3,,val_loss,0.4,False,,")


def test_a_choice_on_the_grid_edge_is_reported_and_warned_in_one_line(tmp_path, capsys):
    files = []
    for p, loss in ((0.1, 0.6), (0.3, 0.5), (0.5, 0.4)):  # the strongest dropout wins
        config = {"model": {"dropout": p}, "optim": {"lr": 0.001}}
        files.append(str(write_run(tmp_path / f"dropout-{p}", "dropout", config, [loss] * 3)))
    out = tmp_path / "reg.json"
    assert main(["--key", "dropout=model.dropout", "--out", str(out), *files]) == 0
    chosen = json.loads(out.read_text())["dropout"]
    assert (chosen["grid"], chosen["chosen"], chosen["at_edge"], chosen["edge"]) == (
        [0.1, 0.3, 0.5], 0.5, True, "highest"
    )  # fmt: skip
    row = out.with_suffix(".csv").read_text().splitlines()[1].split(",")
    assert row[2:4] + row[7:9] == ["0.1 0.3 0.5", "0.5", "True", "highest"]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "warning: dropout: model.dropout chosen at 0.5, the highest value of its grid [0.1, 0.3, "
        "0.5]: the optimum may lie outside; extend the grid past it in the tune block"
    ]


def test_unreadable_result_is_one_error_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "metrics.json"
    bad.write_text("{not json")
    out = tmp_path / "selection.json"
    assert main(["--out", str(out), str(bad)]) == 1
    assert "unreadable tuning result" in capsys.readouterr().err
    assert not out.exists()
