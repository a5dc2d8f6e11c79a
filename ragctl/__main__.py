from ragctl.cli import main

main()
