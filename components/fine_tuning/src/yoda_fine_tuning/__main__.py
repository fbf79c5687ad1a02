from yoda_fine_tuning.cli import main

main()
