"""The eager-mode torch.optim patch keeps the compiler unimported and the numbers unchanged."""

from __future__ import annotations

import subprocess
import sys

import torch

STEPS = """
import torch
torch.manual_seed(0)
results = {}
for name in ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "LBFGS"]:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    kwargs = {"lr": 0.1}
    if name == "SGD":
        kwargs.update(momentum=0.9, nesterov=True)
    opt = getattr(torch.optim, name)(model.parameters(), **kwargs)
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    for _ in range(5):
        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss
        opt.step(closure)
    results[name] = [p.detach().clone() for p in model.parameters()]
"""


def test_patched_optimizers_match_torch_and_skip_the_compiler_import(tmp_path):
    reference = tmp_path / "reference.pt"
    code = STEPS + f"torch.save(results, {str(reference)!r})\n"
    subprocess.run([sys.executable, "-c", code], check=True)  # a fresh, unpatched torch
    expected = torch.load(reference, weights_only=True)

    patched = tmp_path / "patched.pt"
    probe = (
        "import sys\nfrom study.startup import avoid_compiler_import\n"
        "assert avoid_compiler_import()\n"
        + STEPS
        + f"torch.save(results, {str(patched)!r})\n"
        + "print('dynamo' if 'torch._dynamo' in sys.modules else 'eager')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "eager"
    got = torch.load(patched, weights_only=True)
    for name, params in expected.items():
        for a, b in zip(got[name], params, strict=True):
            assert torch.equal(a, b), name


def test_a_batch_jobs_reset_between_runs_leaves_the_compiler_unimported_on_cpu():
    # torch.use_deterministic_algorithms imports the compiler's config; a CPU run never changes
    # the flags, so the reset before each run of a batch must not call it.
    probe = (
        "import sys, torch\nfrom study.training.batch import reset_process_state\n"
        "reset_process_state(1)\nprint('dynamo' if 'torch._dynamo' in sys.modules else 'eager')\n"
        "torch.use_deterministic_algorithms(True, warn_only=True)\nreset_process_state(1)\n"
        "print(torch.are_deterministic_algorithms_enabled())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["eager", "False"]  # and a run that changed them is undone


def test_a_job_ends_with_its_exit_code_and_its_files_complete(tmp_path):
    # exit_job skips the final garbage collection, nothing else: an unclosed file is flushed.
    target = tmp_path / "written.txt"
    probe = (
        "import torch\nfrom study.startup import exit_job\n"
        f"f = open({str(target)!r}, 'w')\nf.write('x' * 100000)\nexit_job(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe])
    assert done.returncode == 3
    assert target.read_text() == "x" * 100000
