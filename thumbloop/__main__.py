from thumbloop.cli.main import main

main()
