"""Optimization pathologies on problems built to show them, one module per problem:
``conditioning`` (badly conditioned quadratics, and the zigzag), ``saddle`` (escape from a strict
saddle), ``gradient_noise`` (minibatch gradient variance against B), ``activations`` (saturating
gradients through depth, dead ReLUs) and ``newton_asymptotics`` (Newton's Hessian and solve at N
in the thousands, and its time to a target). ``fits`` holds the numbers they are judged by;
``cli`` the command, ``python -m study.experiments.pathologies --data <cache> --out <csv>``.
"""
