from yoda_evaluation.cli import main

main()
