"""`python -m local_stack`: the whole system on 127.0.0.1 (see `local_stack.runner`). `bash scripts/run.sh` calls it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from local_stack.runner import DEFAULT_PORT, StackOptions, run


def parse_args(argv: Sequence[str] | None = None) -> StackOptions:
    parser = argparse.ArgumentParser(
        prog="python -m local_stack",
        description="Run moto, the Earthdata emulator, the credential rotator, pgstac and the raster API locally.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the raster API (default %(default)s)")
    parser.add_argument(
        "--real-aws",
        action="store_true",
        help="run only the API against real AWS with this shell's identity and PROVIDERS_CONFIG (reads real secrets)",
    )
    parser.add_argument("--no-pgstac", action="store_true", help="skip PostgreSQL/pgstac even when installed")
    parser.add_argument(
        "--rotate-every", type=float, default=60.0, help="seconds between background rotations (default %(default)s)"
    )
    parser.add_argument(
        "--state-file", type=Path, help="write endpoints and the local moto admin keys here (JSON, mode 0600)"
    )
    args = parser.parse_args(argv)
    if args.rotate_every <= 0:
        parser.error("--rotate-every must be positive")
    return StackOptions(
        port=args.port,
        real_aws=args.real_aws,
        pgstac=not args.no_pgstac,
        rotate_every=args.rotate_every,
        state_file=args.state_file,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
