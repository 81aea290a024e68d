from thumbloop.cli import main

main()
