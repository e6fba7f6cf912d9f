import sys

from miro_edge.cli import main

if __name__ == "__main__":
    sys.exit(main())
