from study.experiments.pathologies.cli import main

main()
