from study.experiments.second_order.comparison import main

main()
