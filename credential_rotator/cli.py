"""`credential-rotator [--provider NAME]... [--dry-run | --check]`: run a rotation by hand, e.g. to test a login.

Same environment as the Lambda (PROVIDERS_CONFIG, EARTHDATA_*, AWS_*). A dry run fetches and validates but writes
nothing and prints what would be written with the secret values redacted. `--check` writes nothing either and prints
one line per provider: `NAME: ok: login OK; credentials valid until ...`, or `eula_not_accepted`, `unreachable`,
`login_failed`, `error` with the reason. Logs go to stderr as JSON; the summary to stdout. Exit status: 0 when every
provider rotated (or checked OK), 1 when any failed, 2 on a usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from credential_rotator.check import run_check
from credential_rotator.observability import MetricsEmitter, configure_logging
from credential_rotator.rotate import RotationReport, run
from providers import ProvidersConfigError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="credential-rotator",
        description="Fetch Earthdata S3 credentials for each earthdata provider and write them to Secrets Manager.",
    )
    parser.add_argument(
        "--provider",
        action="append",
        dest="providers",
        metavar="NAME",
        help="rotate only this provider (repeatable; default: every earthdata provider in PROVIDERS_CONFIG)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="fetch and validate, print redacted, write nothing")
    mode.add_argument(
        "--check",
        action="store_true",
        help="per provider: login OK / EULA not accepted / endpoint unreachable / credentials valid until; "
        "writes nothing",
    )
    return parser.parse_args(argv)


def print_report(report: RotationReport, dry_run: bool) -> None:
    verb = "would write" if dry_run else "rotated"
    for name in report.rotated:
        written = report.written[name]
        print(f"{verb} {name} -> secret {written['secret_id']} (valid for {written['seconds_until_expiry']} s)")
        if dry_run:
            print(json.dumps(written["value"], indent=2))
    for name, exc in report.failed.items():
        print(f"FAILED {name}: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("stderr")
    try:
        if args.check:
            result = run_check(args.providers)
            for name, check in result["check"].items():
                print(f"{name}: {check['status']}: {check['message']}")
            return 0 if result["ok"] else 1
        report = run(names=args.providers, dry_run=args.dry_run, metrics=MetricsEmitter(enabled=False))
    except ProvidersConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a ROTATOR_*/EARTHDATA_* variable of the wrong type; name it, not its value
        prefix = {"RotatorSettings": "ROTATOR_", "EarthdataSettings": "EARTHDATA_"}.get(exc.title, "")
        fields = ", ".join(sorted({prefix + str(err["loc"][0]).upper() for err in exc.errors() if err["loc"]}))
        print(f"error: invalid setting(s): {fields}", file=sys.stderr)
        return 2
    print_report(report, args.dry_run)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
