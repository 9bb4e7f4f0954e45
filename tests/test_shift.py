"""Test-time shift (study/experiments/shift.py): corruptions, drift, prior shift, AdaBN, CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from study.components.corruptions import CORRUPTIONS
from study.components.layers import BatchRenorm
from study.experiments import shift as shift
from study.experiments.shift import (
    adapt_norm_statistics,
    drift_slices,
    evaluate_run,
    prior_proportions,
    prior_shift_indices,
)

ROOT = Path(__file__).resolve().parents[1]
SEVERITIES = range(1, 6)


def images(n: int = 64, channels: int = 1, size: int = 28, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


# ----------------------------------------------------------------------------- drift


def test_drift_slices_cover_the_test_set_and_get_harder():
    x, y = images(300, seed=1), torch.arange(300) % 10
    stream = drift_slices(x, y, slices=6, max_severity=5, mix=list(CORRUPTIONS), seed=0)
    assert [s for s, *_ in stream] == pytest.approx([0, 1, 2, 3, 4, 5])
    idx = torch.cat([i for _, i, _, _ in stream])
    assert torch.equal(idx.sort().values, torch.arange(300)), "each image in exactly one slice"
    for _, i, xt, yt in stream:
        assert len(i) == 50 and torch.equal(yt, y[i]) and xt.dtype == torch.uint8
    d = [mad(xt, x[i]) for _, i, xt, _ in stream]
    assert d[0] == 0, "the first slice is the clean deployment-day data"
    assert all(lo < hi for lo, hi in zip(d, d[1:], strict=False)), d
    again = drift_slices(x, y, slices=6, max_severity=5, mix=list(CORRUPTIONS), seed=0)
    assert all(torch.equal(a[2], b[2]) for a, b in zip(stream, again, strict=True))


def test_drift_lowers_the_accuracy_of_a_model_that_relies_on_intensity():
    # Four classes of flat gray images; the "model" reads the class off the mean gray level, as a
    # network trained on fixed lighting does implicitly. It is perfect on the clean first slice.
    levels = torch.tensor([40.0, 100.0, 160.0, 220.0])
    y = torch.arange(400) % 4
    noise = 5 * torch.randn(400, 1, 28, 28, generator=gen(3))
    x = (levels[y].view(-1, 1, 1, 1) + noise).clamp(0, 255).round().to(torch.uint8)

    def accuracy(xt, yt):
        pred = (xt.float().mean(dim=(1, 2, 3)).view(-1, 1) - levels).abs().argmin(1)
        return (pred == yt).float().mean().item()

    stream = drift_slices(x, y, slices=5, max_severity=5, mix=["brightness", "contrast"], seed=0)
    acc = [accuracy(xt, yt) for _, _, xt, yt in stream]
    assert acc[:2] == [1.0, 1.0], acc  # brightness +0.0625 stays within half a level's spacing
    assert max(acc[2:]) < 0.8, acc  # beyond it, every brightened image of a class is misread


# ----------------------------------------------------------------------------- prior shift


def test_prior_shift_follows_the_power_law():
    y = torch.arange(1000) % 10  # 100 images per class
    idx = prior_shift_indices(y, 10, 10.0, seed=0)
    counts = torch.bincount(y[idx], minlength=10)
    # 100 · 10^(−rank/9), floored: largest / smallest = 10
    assert sorted(counts.tolist(), reverse=True) == [100, 77, 59, 46, 35, 27, 21, 16, 12, 10]
    assert len(idx.unique()) == len(idx)
    share = prior_proportions(10, 10.0, seed=0)
    assert share.sum().item() == pytest.approx(1.0)
    assert torch.equal(counts.argsort(descending=True), share.argsort(descending=True))
    assert torch.equal(idx, prior_shift_indices(y, 10, 10.0, seed=0))


def test_prior_shift_levels_skew_more_and_ratio_one_is_balanced():
    y = torch.arange(1000) % 10
    assert torch.bincount(y[prior_shift_indices(y, 10, 1.0, 0)]).tolist() == [100] * 10
    top = []
    for ratio in (2, 10, 100):
        counts = torch.bincount(y[prior_shift_indices(y, 10, ratio, 0)], minlength=10)
        assert counts.max() / counts.min() == pytest.approx(ratio, rel=0.02)
        top.append(counts.max().item() / counts.sum().item())
    assert top[0] < top[1] < top[2], "the most frequent class's share grows with the skew"
    with pytest.raises(ValueError, match="ratio"):
        prior_proportions(10, 0.5, 0)


# ----------------------------------------------------------------------------- AdaBN


def shifted(n: int = 600, seed: int = 0) -> torch.Tensor:
    g = gen(seed)
    return torch.randn(n, 4, generator=g) * torch.tensor([2.0, 0.5, 1.0, 3.0]) + torch.tensor(
        [5.0, -3.0, 1.0, 0.0]
    )


def test_adabn_sets_running_statistics_to_the_shifted_data():
    bn = nn.BatchNorm1d(4)
    model = nn.Sequential(bn, nn.Linear(4, 3)).eval()
    x = shifted()
    # unequal batches: the statistics are of all the data, not an average of batch statistics
    n = adapt_norm_statistics(model, [x[:100], x[100:450], x[450:]])
    assert n == 1
    assert torch.allclose(bn.running_mean, x.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, x.var(0), rtol=1e-5)
    assert bn.momentum == 0.1, "momentum is left as it was"
    assert not model.training


def test_adabn_on_images_uses_per_channel_statistics():
    bn = nn.BatchNorm2d(3)
    x = torch.randn(20, 3, 5, 5, generator=gen()) + torch.tensor([1.0, -2.0, 4.0]).view(1, 3, 1, 1)
    adapt_norm_statistics(nn.Sequential(bn), [x[:7], x[7:]])
    assert torch.allclose(bn.running_mean, x.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, x.transpose(0, 1).reshape(3, -1).var(1), rtol=1e-5)


def two_layer(p_drop: float = 0.5) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(p_drop), nn.Linear(8, 8),
        nn.BatchNorm1d(8),
    ).eval()  # fmt: skip


def test_adabn_keeps_dropout_off_and_is_deterministic():
    x = shifted()
    a, b = two_layer(), two_layer()
    torch.manual_seed(1)
    adapt_norm_statistics(a, [x])
    torch.manual_seed(2)
    adapt_norm_statistics(b, [x])
    assert torch.equal(a[5].running_var, b[5].running_var), "no random dropout masks"
    # the second BN saw its input with the first already adapted and dropout off (eval mode); the
    # pass normalized with the population variance, the stored one is unbiased: a factor n/(n-1)
    with torch.no_grad():
        h = a[:5](x)
    tol = 2 / len(x)
    assert torch.allclose(a[5].running_mean, h.mean(0), rtol=tol, atol=tol)
    assert torch.allclose(a[5].running_var, h.var(0), rtol=tol)


def test_adabn_restores_each_modules_mode():
    model = two_layer()
    model.train()
    model[3].eval()
    adapt_norm_statistics(model, [shifted()])
    assert [m.training for m in model] == [True, True, True, False, True, True]


def test_adabn_outputs_of_a_single_batch_are_the_adapted_models():
    model, x = two_layer(), shifted()
    out: list[torch.Tensor] = []
    adapt_norm_statistics(model, [x], outputs=out)
    tol = 2 / len(x)  # population vs unbiased variance, n/(n-1), compounded over two layers
    with torch.no_grad():
        assert torch.allclose(out[0], model(x), rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "norm", [nn.Identity(), nn.GroupNorm(2, 4), nn.LayerNorm(4), nn.BatchNorm1d(4, affine=False,
                                                                                track_running_stats=False)]
)  # fmt: skip
def test_adabn_leaves_models_without_running_statistics_unchanged(norm):
    model = nn.Sequential(nn.Linear(4, 4), norm, nn.Linear(4, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert adapt_norm_statistics(model, [shifted()]) == 0
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


class RenormLike(nn.Module):
    """Not a torch _BatchNorm, but with its buffers and reset; its training forward must not run."""

    def __init__(self, c: int):
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))
        self.momentum = 0.01

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1)

    def forward(self, x):
        if self.training:
            raise AssertionError("adaptation must not use the training forward")
        return (x - self.running_mean) / (self.running_var + 1e-5).sqrt()


def test_adabn_finds_any_module_with_running_statistics():
    layer = RenormLike(4)
    x = shifted()
    assert adapt_norm_statistics(nn.Sequential(layer), [x[:300], x[300:]]) == 1
    assert torch.allclose(layer.running_mean, x.mean(0), atol=1e-5)
    assert layer.momentum == 0.01


def test_adabn_normalizes_through_relaxed_batch_renorm_layers():
    # After training, Batch Renorm is relaxed (r_max 3, d_max 5). Its training forward against
    # reset statistics (mean 0, var 1) would pass x through nearly unnormalized, so a second layer
    # would record mean ≈ 5, -3, 1, 0. Adaptation must normalize as BatchNorm does.
    first, second = BatchRenorm(4), BatchRenorm(4)
    first.set_progress(10_000, 10_000)  # the end of training: fully relaxed
    second.set_progress(10_000, 10_000)
    x = shifted()
    adapt_norm_statistics(nn.Sequential(first, second), [x])
    assert torch.allclose(first.running_mean, x.mean(0), atol=1e-5)
    assert torch.allclose(second.running_mean, torch.zeros(4), atol=1e-4)
    assert torch.allclose(second.running_var, torch.ones(4), atol=1e-2)


# ----------------------------------------------------------------------------- evaluate_run


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A tiny synthetic dataset in the study's cache format: 4 classes of 12×12 images."""
    from study.components.data import write_cache

    g = gen(5)

    def split(n):
        y = torch.arange(n) % 4
        x = torch.randint(0, 120, (n, 1, 12, 12), generator=g)
        x[torch.arange(n), 0, 3 * y] += 120  # a bright row per class
        return x.to(torch.uint8), y

    train_x, train_y = split(160)
    test_x, test_y = split(80)
    path = tmp_path_factory.mktemp("data") / "tiny.pt"
    raw = dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)
    write_cache(raw | {"classes": ["a", "b", "c", "d"]}, path)
    return path


def make_run(folder: Path, norm: str = "batchnorm", dropout: float = 0.0) -> Path:
    from study.components.models import build_model

    model_cfg = OmegaConf.load(ROOT / "conf/model/resmlp.yaml")
    model_cfg.merge_with({"width": 16, "blocks": 1, "norm": norm, "dropout": dropout})
    data_cfg = OmegaConf.load(ROOT / "conf/data/fashion_mnist.yaml")
    data_cfg.merge_with({"n_train": 100, "n_val": 40, "n_test": 60})
    cfg = OmegaConf.create({"seed": 0, "device": "cpu", "threads": 1})
    cfg.data, cfg.model = data_cfg, model_cfg
    folder.mkdir(parents=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 12, 12), 4)
    if norm == "batchnorm":  # trained-looking statistics, so that adaptation has work to do
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    torch.save(model.state_dict(), folder / "model.pt")
    return folder


def small_settings(**changes):
    s = shift.load_settings()
    s.merge_with(
        {"corruptions": ["brightness", "pixelate"], "severities": [1, 5]}
        | {"drift": {"slices": 3}, "prior": {"ratios": [5]}}
        | changes
    )
    return s


def test_evaluate_run_scores_every_shift_as_trained_and_adapted(tmp_path, cache):
    run = make_run(tmp_path / "run")
    rows = evaluate_run(run, cache, small_settings(), threads=1)
    keys = [(r["shift"], r["severity"], r["slice"], r["adapted"]) for r in rows]
    expected = [("clean", 0, None)]
    expected += [(c, s, None) for c in ("brightness", "pixelate") for s in (1, 5)]
    expected += [("drift", s, t) for t, s in enumerate((0.0, 2.5, 5.0))]
    expected += [("prior", None, None)]
    assert keys == [(*e, a) for e in expected for a in (False, True)]
    assert all(set(r) == set(shift.COLUMNS) for r in rows)
    assert all(0 <= r["accuracy"] <= 1 and r["loss"] > 0 for r in rows)
    assert all(r["n_norm"] == 3 for r in rows)  # resmlp, 1 block: two in the block, one in the head
    assert [r["n"] for r in rows[:2]] == [60, 60], "data.n_test=60 of 80 test images"
    assert sum(r["n"] for r in rows if r["shift"] == "drift") == 2 * 60
    prior = [r for r in rows if r["shift"] == "prior"]
    assert prior[0]["param"] == 5 and prior[0]["n"] < 60
    clean = {r["adapted"]: r for r in rows if r["shift"] == "clean"}
    assert clean[False]["loss"] != clean[True]["loss"], "adaptation changed the statistics"
    # each shift adapts from the trained weights: a shift's rows do not depend on what came before
    alone = evaluate_run(run, cache, small_settings(corruptions=["pixelate"]), threads=1)
    pick = [r for r in rows if r["shift"] == "pixelate"]
    assert pick == [r for r in alone if r["shift"] == "pixelate"]
    assert torch.load(run / "model.pt", weights_only=True).keys()  # left as it was


def test_adapting_in_batches_matches_one_batch(tmp_path, cache):
    run = make_run(tmp_path / "run")
    one = evaluate_run(run, cache, small_settings(), threads=1)
    many = evaluate_run(run, cache, small_settings(adapt_batch_size=20), threads=1)
    for a, b in zip(one, many, strict=True):
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=0.05)
        assert a["loss"] == pytest.approx(b["loss"], rel=0.05)


def test_models_without_running_statistics_have_equal_adapted_rows(tmp_path, cache):
    run = make_run(tmp_path / "run", norm="layernorm", dropout=0.5)
    rows = evaluate_run(run, cache, small_settings(), threads=1)
    assert all(r["n_norm"] == 0 for r in rows)
    for plain, adapted in zip(rows[::2], rows[1::2], strict=True):
        assert (plain["adapted"], adapted["adapted"]) == (False, True)
        assert (plain["accuracy"], plain["loss"]) == (adapted["accuracy"], adapted["loss"])


# ----------------------------------------------------------------------------- CLI


def test_cli_writes_shift_csv(tmp_path, cache, capsys):
    run = make_run(tmp_path / "run")
    assert shift.main(["--run", str(run), "--data", str(cache), "--threads", "1"]) == 0
    with open(run / "shift.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == shift.COLUMNS
    # default settings: clean + 5 corruptions × 5 severities + 10 drift slices + 3 prior levels
    assert len(table) == 2 * (1 + 25 + 10 + 3)
    drift = [r for r in table if r["shift"] == "drift"]
    assert [r["slice"] for r in drift[::2]] == [str(t) for t in range(10)]
    others = [r for r in table if r["shift"] != "drift"]
    assert all(r["slice"] == "" for r in others), "figures find drift rows by a non-empty slice"
    assert {r["adapted"] for r in table} == {"True", "False"}
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "model.pt", "shift.csv"]
    assert "shift.csv" in capsys.readouterr().out


def test_cli_scores_several_runs_each_as_alone_and_fails_if_one_fails(tmp_path, cache, capsys):
    batchnorm, layernorm = make_run(tmp_path / "bn"), make_run(tmp_path / "ln", norm="layernorm")
    assert shift.main(["--run", str(layernorm), "--data", str(cache), "--threads", "1"]) == 0
    alone = (layernorm / "shift.csv").read_text()
    (layernorm / "shift.csv").unlink()
    broken = make_run(tmp_path / "broken")
    (broken / "model.pt").unlink()
    argv = ["--run", str(batchnorm), "--run", str(broken), "--run", str(layernorm)]
    assert shift.main([*argv, "--data", str(cache), "--threads", "1"]) != 0
    # the run after the broken one is still scored, and scored as it is alone
    assert (layernorm / "shift.csv").read_text() == alone
    assert (batchnorm / "shift.csv").is_file() and not (broken / "shift.csv").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken/model.pt" in err[0]


@pytest.mark.parametrize("missing", ["model.pt", "config.yaml"])
def test_cli_names_a_missing_file_and_writes_nothing(tmp_path, cache, capsys, missing):
    run = make_run(tmp_path / "run")
    (run / missing).unlink()
    assert shift.main(["--run", str(run), "--data", str(cache)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and missing in err[0]
    assert not (run / "shift.csv").exists()
    assert sorted(p.name for p in run.iterdir()) == sorted({"config.yaml", "model.pt"} - {missing})


def test_cli_rejects_a_model_from_another_config(tmp_path, cache, capsys):
    run = make_run(tmp_path / "run")
    other = make_run(tmp_path / "other", norm="layernorm")
    (other / "model.pt").replace(run / "model.pt")
    assert shift.main(["--run", str(run), "--data", str(cache)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.pt" in err[0] and "retrain" in err[0]
    assert not (run / "shift.csv").exists()


def test_python_m_study_shift_exits_nonzero_on_a_missing_model(tmp_path, cache):
    run = make_run(tmp_path / "run")
    (run / "model.pt").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "study.experiments.shift", "--run", str(run), "--data", str(cache)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "model.pt" in proc.stderr
    assert not (run / "shift.csv").exists()
