from byoc.cli import main

main()
