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
