from firmlm.cli import main

main()
