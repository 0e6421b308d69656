from streamlet.cli.main import main

main()
