"""`python -m kernelscope` is the `kernelscope` command."""

import sys

from kernelscope.cli import main

sys.exit(main())
