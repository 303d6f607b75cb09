import sys

from sh_scaling.cli import main

sys.exit(main())
