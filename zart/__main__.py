from zart.cli import main

main()
