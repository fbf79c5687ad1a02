from yoda_inference.cli import main

main()
