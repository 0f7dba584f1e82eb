from convertmodel.cli.main import main

main()
