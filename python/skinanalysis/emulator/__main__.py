"""``python -m skinanalysis.emulator [options]`` (see ``--help``)."""

import sys

from .config import config_from_args
from .faults import ScenarioError
from .server import serve


def main(argv=None):
    try:
        config = config_from_args(argv)
    except (ValueError, OSError, ScenarioError) as exc:
        print("emulator: %s" % exc, file=sys.stderr)
        return 2
    try:
        return serve(config)
    except (OSError, ScenarioError) as exc:
        print("emulator: %s" % exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
