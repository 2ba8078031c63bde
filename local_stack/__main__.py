"""`python -m local_stack`: the whole system on 127.0.0.1 (see `local_stack.runner`). `bash scripts/run.sh` calls it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from local_stack.runner import DEFAULT_PORT, DEFAULT_STACK_DIR, StackOptions, run


def parse_args(argv: Sequence[str] | None = None) -> StackOptions:
    parser = argparse.ArgumentParser(
        prog="python -m local_stack",
        description="Run moto, the Earthdata emulator, the credential rotator, pgstac and the raster API behind an "
        "nginx cache locally.",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port callers use: the cache's, or the API's with --no-cdn"
    )
    parser.add_argument(
        "--no-cdn", action="store_true", help="serve the API directly, without the nginx cache (CloudFront's stand-in)"
    )
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
    parser.add_argument(
        "--stack-dir",
        type=Path,
        default=DEFAULT_STACK_DIR,
        help="where every process's logs (logs/) and the cache's files (cdn/) are kept (default %(default)s)",
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
        cdn=not args.no_cdn,
        stack_dir=args.stack_dir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
