import sys

from course.tools.cli import main

sys.exit(main())
