from yoda_data_transformation.cli import main

main()
