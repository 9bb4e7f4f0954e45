"""Learning-rate selection: best validation point wins, divergence ranks last, edges are flagged."""

from __future__ import annotations

import json

from study.planning.tuning import main, select


def point(variant, lr, val_loss, status="ok", val_acc=0.5):
    return {
        "variant": variant,
        "lr": lr,
        "status": status,
        "val_loss": val_loss,
        "val_acc": val_acc,
    }


def test_lowest_validation_loss_wins_and_interior_winner_is_not_at_edge():
    pts = [point("sgd", 0.01, 0.9), point("sgd", 0.1, 0.4), point("sgd", 1.0, 0.7)]
    chosen = select(pts)["sgd"]
    assert chosen["lr"] == 0.1 and not chosen["at_edge"] and not chosen["all_diverged"]


def test_winner_on_the_grid_edge_is_flagged():
    pts = [
        point("adam", 0.001, 0.3),
        point("adam", 0.01, 0.5),
        point("adam", 0.1, None, "diverged"),
    ]
    chosen = select(pts)["adam"]
    assert chosen["lr"] == 0.001 and chosen["at_edge"]
    assert chosen["diverged"] == [0.1]


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
    assert select(pts, "val_loss")["sgd"]["lr"] == 0.3


def test_command_line_writes_json_and_csv(tmp_path):
    files = []
    for lr, loss in ((0.01, 0.6), (0.1, 0.4), (1.0, 0.9)):
        path = tmp_path / f"lr-{lr}" / "metrics.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"variant": "sgd", "lr": lr, "status": "ok", "val_loss": loss}))
        files.append(str(path))
    out = tmp_path / "selection" / "opt.json"
    assert main(["--out", str(out), *files]) == 0
    assert json.loads(out.read_text())["sgd"]["lr"] == 0.1
    assert out.with_suffix(".csv").read_text().splitlines()[0].startswith("variant,lr,metric")


def test_unreadable_result_is_one_error_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "metrics.json"
    bad.write_text("{not json")
    out = tmp_path / "selection.json"
    assert main(["--out", str(out), str(bad)]) == 1
    assert "unreadable tuning result" in capsys.readouterr().err
    assert not out.exists()
