"""Lambda packaging without Docker: pip installs manylinux wheels for the target architecture into a directory.

Docker, which ops machines and CI often lack, is not needed to build a Lambda bundle: wheels for Lambda's
platform (Amazon Linux 2023, glibc 2.34) install anywhere with `pip --platform ... --only-binary=:all:`, so bundling
is a local step (`ILocalBundling.try_bundle`); Docker's SAM build image is only the fallback when no pip exists.
Bundles are cached under a hash of the requirement set and our sources, so repeated synths are instant.

Bundles ship byte-code instead of Python source (titiler's own Lambda images do the same): Lambda's /var/task is
read-only, so a source-only bundle is compiled again on every cold start (measured: importing `raster_api.handler`
from the bundle takes 3.8 s from source, 1.7 s from byte-code), and the byte-code takes the source's place, so the
bundle does not grow towards the 250 MB limit (212 -> 215 MB).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shlex
import shutil
import subprocess  # noqa: S404 - pip is the tool, run without a shell
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from packaging.requirements import Requirement

from infrastructure.config import Architecture, BundlingMode

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_DIR = Path(__file__).resolve().parent / "placeholder_code"
PLACEHOLDER_IMAGE_DIR = Path(__file__).resolve().parent / "placeholder_image"
PYTHON_VERSION = "3.12"
# Where Lambda unpacks the code: the file names that tracebacks of the bundled byte-code show.
LAMBDA_TASK_ROOT = "/var/task"
# Lambda's unzipped deployment package limit (code + layers).
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# Lambda's container image limit (all layers, uncompressed).
LAMBDA_IMAGE_LIMIT = 10 * 1024**3
# Lambda's own base image of the runtime: the image function runs the same Python as the zip functions.
LAMBDA_BASE_IMAGE = f"public.ecr.aws/lambda/python:{PYTHON_VERSION}"
# Bump when the way a bundle is built changes, so cached bundles are rebuilt.
BUNDLER_VERSION = "3"
# Local development only; never needed on Lambda.
NOT_ON_LAMBDA = frozenset({"uvicorn"})
# Directories that no import needs at run time.
STRIPPED_DIRS = frozenset({"__pycache__", "tests"})
STRIPPED_SUFFIXES = (".pyc", ".pyo", ".pyi")
# Lambda runs Amazon Linux 2023 (glibc 2.34); pip expands the legacy manylinux2014 tag to older ones itself.
MANYLINUX_TAGS = ("manylinux2014", "manylinux_2_28", "manylinux_2_34")


PIP_TIMEOUT_SECONDS = 1200
# Our own distribution: installed editable here, never on an index.
OWN_DISTRIBUTION = "raster-tiler"


class BundleError(RuntimeError):
    """A Lambda bundle could not be built (pip failed, or the result is too large for Lambda)."""


@dataclass(frozen=True)
class LambdaBundle:
    """What goes into one Lambda's code: third-party requirements and our own top-level packages."""

    name: str
    requirements: tuple[str, ...]
    packages: tuple[str, ...]
    architecture: Architecture = "x86_64"
    # `name==version` pins applied with `pip -c`: the versions the test suite ran with (see `environment_pins`).
    constraints: tuple[str, ...] = ()
    # What Lambda accepts: a zip's 250 MB unzipped, or a container image's 10 GB.
    size_limit: int = LAMBDA_UNZIPPED_LIMIT

    @property
    def architecture_tag(self) -> str:
        """The wheel platform suffix of `architecture`."""
        return "aarch64" if self.architecture == "arm64" else "x86_64"

    def fingerprint(self, root: Path = REPO_ROOT) -> str:
        digest = hashlib.sha256()
        parts = (BUNDLER_VERSION, PYTHON_VERSION, self.architecture, *sorted(self.requirements), *self.constraints)
        for part in parts:
            digest.update(part.encode() + b"\0")
        for path in sorted(_source_files(root, self.packages)):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()


def project_requirements(*extras: str, pyproject: Path = REPO_ROOT / "pyproject.toml") -> tuple[str, ...]:
    """`[project] dependencies` plus the given extras, without the tools that never run on Lambda."""
    project = tomllib.loads(pyproject.read_text())["project"]
    specs: list[str] = list(project.get("dependencies", []))
    for extra in extras:
        specs.extend(project.get("optional-dependencies", {}).get(extra, []))
    return tuple(s for s in dict.fromkeys(specs) if Requirement(s).name.lower() not in NOT_ON_LAMBDA)


def environment_pins() -> tuple[str, ...]:
    """`name==version` of every distribution in this environment (the one the tests ran in).

    Used as pip constraints so a Lambda gets exactly the tested versions, and pip never backtracks through
    hundreds of releases of a loosely pinned dependency.
    """
    pins = set()
    for dist in importlib.metadata.distributions():
        name, version = dist.metadata["Name"], dist.version
        if name and name.lower() != OWN_DISTRIBUTION and "+" not in version:
            pins.add(f"{name.lower()}=={version}")
    return tuple(sorted(pins))


def raster_bundle(architecture: Architecture) -> LambdaBundle:
    return LambdaBundle(
        "raster-api", project_requirements("api"), ("providers", "raster_api"), architecture, environment_pins()
    )


def md_bundle(architecture: Architecture) -> LambdaBundle:
    # The api extra plus xarray, h5py, zarr and obstore is about 300 MB, over a zip's 250 MB: it ships as an image.
    return LambdaBundle(
        "raster-api-md",
        project_requirements("api", "md"),
        ("providers", "raster_api"),
        architecture,
        environment_pins(),
        size_limit=LAMBDA_IMAGE_LIMIT,
    )


def rotator_bundle(architecture: Architecture) -> LambdaBundle:
    # The rotator must not ship titiler/GDAL: only the shared dependencies, `requests` and Powertools.
    return LambdaBundle(
        "credential-rotator",
        project_requirements("rotator"),
        ("providers", "credential_rotator"),
        architecture,
        environment_pins(),
    )


def _source_files(root: Path, packages: Iterable[str]) -> list[Path]:
    files = []
    for package in packages:
        for path in (root / package).rglob("*"):
            if path.is_file() and not _stripped(path.relative_to(root)):
                files.append(path)
    return files


def _stripped(relative: Path) -> bool:
    return bool(STRIPPED_DIRS.intersection(relative.parts[:-1])) or relative.name.endswith(STRIPPED_SUFFIXES)


def pip_command() -> list[str] | None:
    """A pip that honours the machine's pip configuration (indexes, certificates), or None.

    Prefer this interpreter's pip, then the pip of the Python this venv was made from (a uv venv has no pip):
    a pip on another Python version mis-judges `Requires-Python` for some wheels.
    """
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    base = Path(sys.base_prefix) / "bin" / "python3"
    if base.is_file() and _has_pip(base):
        return [str(base), "-m", "pip"]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            return [found]
    return None


def _has_pip(python: Path) -> bool:
    probe = subprocess.run([str(python), "-c", "import pip"], capture_output=True, check=False)  # noqa: S603
    return probe.returncode == 0


def pip_install_args(bundle: LambdaBundle, target: Path, constraints_file: Path | None = None) -> list[str]:
    platforms = [arg for tag in MANYLINUX_TAGS for arg in ("--platform", f"{tag}_{bundle.architecture_tag}")]
    return [
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        *platforms,
        "--target",
        str(target),
        *(["--constraint", str(constraints_file)] if constraints_file else []),
        *bundle.requirements,
    ]


def strip_bundle(directory: Path, architecture: Architecture = "x86_64") -> None:
    """Remove what no import needs on Lambda: byte-code caches, test suites, type stubs, console scripts,
    and the debug sections of shared objects (Cython extensions ship with them: rasterio's `_io` 7 MB -> 0.9 MB)."""
    shutil.rmtree(directory / "bin", ignore_errors=True)
    for path in sorted(directory.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in STRIPPED_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.name.endswith(STRIPPED_SUFFIXES):
            path.unlink()
    strip_debug_sections(directory, architecture)


def compile_sourceless(directory: Path) -> None:
    """Replace every Python module under `directory` by its byte-code (`foo.py` -> `foo.pyc` beside it).

    Sourceless `.pyc` files are loaded without a source check, so the unzip times CDK's archive sets do not matter.
    A module that does not compile keeps its source. Byte-code is specific to the Python minor version: from another
    interpreter than the runtime's the bundle keeps its source (correct, only slower to start) and says so.
    """
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if running != PYTHON_VERSION:
        print(f"[bundling] Python {running} is not the runtime's {PYTHON_VERSION}: the bundle ships source")
        return
    # A child process: compileall's worker pool must not fork the CDK app's jsii threads.
    subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "compileall", "-q", "-q", "-b", "-j", "0", "-d", LAMBDA_TASK_ROOT, str(directory)],
        check=False,  # exit status 1 when a module does not compile: that module keeps its source
    )
    for source in directory.rglob("*.py"):
        if source.with_suffix(".pyc").is_file():
            source.unlink()


def strip_debug_sections(directory: Path, architecture: Architecture) -> None:
    """`strip --strip-debug` every shared object, best effort (a host strip may not know the target's ELF)."""
    candidates = (
        ["aarch64-linux-gnu-strip", "strip"] if architecture == "arm64" else ["x86_64-linux-gnu-strip", "strip"]
    )
    strip = next((found for name in candidates if (found := shutil.which(name))), None)
    if strip is None:
        return
    objects = [str(p) for p in directory.rglob("*.so*") if p.is_file() and not p.is_symlink()]
    for start in range(0, len(objects), 200):
        subprocess.run([strip, "--strip-debug", *objects[start : start + 200]], capture_output=True, check=False)  # noqa: S603


def directory_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and not p.is_symlink())


def check_size(directory: Path, name: str, limit: int = LAMBDA_UNZIPPED_LIMIT) -> int:
    size = directory_size(directory)
    if size > limit:
        largest = sorted((directory_size(p) if p.is_dir() else p.stat().st_size, p.name) for p in directory.iterdir())
        top = ", ".join(f"{entry} {bytes_ // 2**20} MB" for bytes_, entry in reversed(largest[-8:]))
        raise BundleError(
            f"the {name} Lambda bundle is {size / 2**20:.0f} MB unzipped, over Lambda's {limit / 2**20:.0f} MB limit; "
            f"largest entries: {top}"
        )
    return size


def build_bundle(bundle: LambdaBundle, cache_dir: Path, root: Path = REPO_ROOT) -> Path:
    """Build (or reuse) the bundle directory for `bundle`; returns it."""
    cache_dir = cache_dir if cache_dir.is_absolute() else root / cache_dir
    final = cache_dir / f"{bundle.name}-{bundle.fingerprint(root)[:20]}"
    if final.is_dir():
        log.info("reusing cached %s bundle %s", bundle.name, final)
        return final
    pip = pip_command()
    if pip is None:
        raise BundleError("no pip found to bundle the Lambda code locally")
    work = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    constraints = work.with_name(f"{work.name}.constraints.txt")
    constraints.write_text("".join(f"{pin}\n" for pin in bundle.constraints))
    print(f"[bundling] {bundle.name}: pip install {len(bundle.requirements)} requirements for {bundle.architecture}")
    try:
        result = subprocess.run(  # noqa: S603
            [*pip, *pip_install_args(bundle, work, constraints if bundle.constraints else None)],
            capture_output=True,
            text=True,
            check=False,
            timeout=PIP_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(work, ignore_errors=True)
        raise BundleError(f"pip did not finish the {bundle.name} bundle in {PIP_TIMEOUT_SECONDS} s") from None
    finally:
        constraints.unlink(missing_ok=True)
    if result.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise BundleError(f"pip could not install the {bundle.name} requirements:\n{result.stderr.strip()[-4000:]}")
    for package in bundle.packages:
        shutil.copytree(root / package, work / package, ignore=shutil.ignore_patterns(*STRIPPED_DIRS, "*.py[co]"))
    strip_bundle(work, bundle.architecture)
    compile_sourceless(work)
    size = check_size(work, bundle.name, bundle.size_limit)
    print(f"[bundling] {bundle.name}: {size / 2**20:.0f} MB unzipped")
    work.rename(final)
    prune_cache(cache_dir, bundle.name, keep=final)
    return final


def prune_cache(cache_dir: Path, name: str, keep: Path, kept: int = 2) -> None:
    """Drop all but the `kept` most recent bundles of `name` (a raster bundle is ~200 MB)."""
    bundles = [p for p in cache_dir.glob(f"{name}-*") if p.is_dir() and ".tmp-" not in p.name and p != keep]
    bundles.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in bundles[kept - 1 :]:
        shutil.rmtree(stale, ignore_errors=True)


def copy_tree(source: Path, destination: Path) -> None:
    """Copy a cached bundle into CDK's output directory, with hard links when on the same file system."""

    def link_or_copy(src: str, dst: str) -> Any:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(
        source,
        destination,
        copy_function=link_or_copy,
        dirs_exist_ok=True,
        symlinks=True,
        ignore=shutil.ignore_patterns(*STRIPPED_DIRS),
    )


@jsii.implements(ILocalBundling)
class LocalPipBundling:
    """`ILocalBundling` that runs pip on this machine; returns False (so CDK uses Docker) only when pip is absent."""

    def __init__(self, bundle: LambdaBundle, cache_dir: Path, root: Path = REPO_ROOT) -> None:
        self.bundle = bundle
        self.cache_dir = cache_dir
        self.root = root

    def try_bundle(self, output_dir: str, options: Any = None, **_: Any) -> bool:
        if pip_command() is None:
            print(f"[bundling] no pip on this machine: {self.bundle.name} falls back to Docker")
            return False
        copy_tree(build_bundle(self.bundle, self.cache_dir, self.root), Path(output_dir))
        return True


def docker_command(bundle: LambdaBundle) -> list[str]:
    """The fallback inside the SAM build image: same pip install, same copy, same stripping."""
    requirements = " ".join(shlex.quote(r) for r in bundle.requirements)
    copies = " && ".join(f"cp -r /asset-input/{p} /asset-output/{p}" for p in bundle.packages)
    script = (
        f"pip install --no-compile --only-binary=:all: --target /asset-output {requirements} && {copies} && "
        "rm -rf /asset-output/bin && "
        "find /asset-output -depth -type d \\( -name __pycache__ -o -name tests \\) -exec rm -rf {} + && "
        "find /asset-output -type f \\( -name '*.pyc' -o -name '*.pyi' \\) -delete && "
        "(find /asset-output -type f -name '*.so*' -exec strip --strip-debug {} + || true) && "
        f"python -m compileall -q -b -j 0 -d {LAMBDA_TASK_ROOT} /asset-output; "
        "find /asset-output -type f -name '*.py' -exec sh -c '[ -f \"${1}c\" ] && rm \"$1\"' _ {} \\;"
    )
    return ["bash", "-c", script]


def lambda_code(bundle: LambdaBundle, mode: BundlingMode, cache_dir: Path, root: Path = REPO_ROOT) -> lambda_.Code:
    """Lambda code for `bundle`; `skip` gives a tiny placeholder so template tests run in seconds."""
    if mode == "skip":
        return lambda_.Code.from_asset(str(PLACEHOLDER_DIR))
    docker_platform = "linux/arm64" if bundle.architecture == "arm64" else "linux/amd64"
    options = BundlingOptions(
        image=DockerImage.from_registry(f"public.ecr.aws/sam/build-python{PYTHON_VERSION}"),
        platform=docker_platform,
        command=docker_command(bundle),
        local=LocalPipBundling(bundle, cache_dir, root) if mode == "local" else None,
    )
    return lambda_.Code.from_asset(
        str(root),
        asset_hash=bundle.fingerprint(root),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=options,
    )


def image_dockerfile(handler: str) -> str:
    """The Dockerfile of a bundle shipped as an image: Lambda's base image of the runtime, plus the bundle."""
    return f'FROM {LAMBDA_BASE_IMAGE}\nCOPY . ${{LAMBDA_TASK_ROOT}}\nCMD ["{handler}"]\n'


def lambda_image_code(
    bundle: LambdaBundle, handler: str, mode: BundlingMode, cache_dir: Path, root: Path = REPO_ROOT
) -> lambda_.DockerImageCode:
    """An image for `bundle`: the locally built bundle (the same pip install, stripping and byte-code as a zip) over
    Lambda's base image, so `cdk synth` needs no Docker and only `cdk deploy` builds (a single COPY); `skip` gives a
    placeholder so template tests run in seconds; `docker` runs the pip install inside the image build."""
    platform = ecr_assets.Platform.LINUX_ARM64 if bundle.architecture == "arm64" else ecr_assets.Platform.LINUX_AMD64
    if mode == "skip":
        return lambda_.DockerImageCode.from_image_asset(str(PLACEHOLDER_IMAGE_DIR), platform=platform)
    if mode == "docker":
        return lambda_.DockerImageCode.from_image_asset(
            str(root),
            file="infrastructure/md.Dockerfile",
            platform=platform,
            build_args={"REQUIREMENTS": " ".join(bundle.requirements), "CONSTRAINTS": " ".join(bundle.constraints)},
            exclude=[
                "*",
                "!infrastructure/md.Dockerfile",
                *(f"!{package}" for package in bundle.packages),
                "**/__pycache__",
                "**/tests",
            ],
        )
    directory = build_bundle(bundle, cache_dir, root)
    (directory / "Dockerfile").write_text(image_dockerfile(handler))
    return lambda_.DockerImageCode.from_image_asset(str(directory), platform=platform)
