"""Pins: requirements*.txt and envs/*.yaml pin the same versions, and the pins resolve for Linux, macOS
(Apple silicon) and Windows, and for Linux with an NVIDIA GPU.

The resolution is pip's own resolver in --dry-run with --platform and --report: nothing is installed. It
needs the package registry, so it is skipped, with the reason, where the registry cannot be reached."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.tags import mac_platforms
from packaging.utils import canonicalize_name
from packaging.version import Version

from helpers import REPO

REQUIREMENT_FILES = sorted(REPO.glob("requirements*.txt"))
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def requirements(path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def env_specs(path) -> list[tuple[str, str]]:
    """(name, the rest) of every entry of a conda env: conda's `name=version` and pip's requirement lines."""
    specs = []
    for entry in yaml.safe_load(path.read_text())["dependencies"]:
        for spec in entry["pip"] if isinstance(entry, dict) else [entry]:
            specs.append((spec, "pip" if isinstance(entry, dict) else "conda"))
    return specs


def pinned_version(requirement: Requirement) -> str | None:
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and specifiers[0].operator == "==":
        return specifiers[0].version
    return None


def all_pins() -> list[tuple[str, str, str]]:
    """(package, version, where) for every pin in every requirements file and env."""
    pins = []
    for path in REQUIREMENT_FILES:
        pins += [(canonicalize_name(r.name), pinned_version(r), path.name) for r in requirements(path)]
    for path in ENV_FILES:
        for spec, kind in env_specs(path):
            if kind == "pip":
                requirement = Requirement(spec)
                pins.append((canonicalize_name(requirement.name), pinned_version(requirement), f"envs/{path.name}"))
            else:
                name, _, version = spec.partition("=")
                pins.append((canonicalize_name(name), version or None, f"envs/{path.name}"))
    return pins


# --- agreement ----------------------------------------------------------------------------------


def test_every_dependency_is_pinned_to_one_exact_version():
    pins = all_pins()
    assert len(pins) > 30 and {where for *_, where in pins} >= {"requirements.txt", "envs/train-gpu.yaml"}
    unpinned = [f"{where}: {name}" for name, version, where in pins if not version]
    assert not unpinned, f"not pinned to one version (use ==, or name=version in conda): {unpinned}"


def test_every_package_has_the_same_version_in_every_file():
    versions: dict[str, dict[str, list[str]]] = {}
    for name, version, where in all_pins():
        versions.setdefault(name, {}).setdefault(version, []).append(where)
    disagreeing = {name: found for name, found in versions.items() if len(found) > 1}
    assert not disagreeing, f"pinned to different versions: {disagreeing}"


def test_env_pip_lines_are_the_requirements_lines():
    """Same extras and platform markers too (e.g. tensorflow-cpu everywhere but macOS)."""
    known = {str(r) for path in REQUIREMENT_FILES for r in requirements(path)}
    for path in ENV_FILES:
        for spec, kind in env_specs(path):
            if kind == "pip":
                assert str(Requirement(spec)) in known, f"envs/{path.name}: {spec!r} is in no requirements*.txt"


def test_the_gpu_setup_installs_what_the_cpu_setup_does_with_the_cuda_builds():
    names = {path.name: {canonicalize_name(r.name) for r in requirements(path)} for path in REQUIREMENT_FILES}
    cpu, gpu = names["requirements.txt"], names["requirements-gpu.txt"]
    assert gpu == (cpu - {"tensorflow-cpu"}) | {"jax", "jaxlib"}
    extras = {canonicalize_name(r.name): r.extras for r in requirements(REPO / "requirements-gpu.txt")}
    assert extras["tensorflow"] == {"and-cuda"} and extras["jax"] == {"cuda12"}
    env = {
        canonicalize_name(Requirement(spec).name)
        for spec, kind in env_specs(REPO / "envs" / "train-gpu.yaml")
        if kind == "pip"
    }
    assert {"tensorflow", "jax", "keras"} <= env


# --- resolution -------------------------------------------------------------------------------

# Platform tags pip may install for each target (pip does not widen a --platform to older compatible tags),
# and the environment markers of that target (pip evaluates markers for the machine it runs on, not for
# --platform, so the requirements are filtered here).
PLATFORMS = {
    "linux": (
        ["manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 29))],
        {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"},
    ),
    "macos": (
        list(mac_platforms((14, 0), "arm64")),
        {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64", "os_name": "posix"},
    ),
    "windows": (
        ["win_amd64"],
        {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64", "os_name": "nt"},
    ),
}
SETUPS = {
    "linux": ("linux", ["requirements.txt", "requirements-jax.txt", "requirements-torch.txt"]),
    "macos": ("macos", ["requirements.txt", "requirements-jax.txt", "requirements-torch.txt"]),
    "windows": ("windows", ["requirements.txt", "requirements-jax.txt", "requirements-torch.txt"]),
    "linux-gpu": ("linux", ["requirements-gpu.txt"]),
}
# Snakemake and its Slurm plugin depend on connection_pool, published only as an sdist, which a --platform
# resolution may not use. They are pure Python: their own pins are checked (--no-deps), not their dependencies.
SDIST_DEPENDENT = {"snakemake", "snakemake-executor-plugin-slurm"}
UNREACHABLE = re.compile(
    r"NewConnectionError|ConnectTimeoutError|ReadTimeoutError|Max retries exceeded|ProxyError|Network is unreachable"
    r"|Name or service not known|Temporary failure in name resolution|Connection refused"
)


def for_platform(files: list[str], markers: dict) -> list[str]:
    lines = []
    for name in files:
        for requirement in requirements(REPO / name):
            if requirement.marker is None or requirement.marker.evaluate(markers):
                requirement.marker = None
                lines.append(str(requirement))
    return lines


def pip_resolve(lines: list[str], platform: str, target, *extra: str) -> tuple[dict | None, str | None]:
    """pip's resolution of `lines` for `platform`: (its --report, None), or (None, why the registry is
    unreachable). A resolution that fails for another reason fails the test, with pip's error."""
    tags, markers = PLATFORMS[platform]
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--report",
        "-",
        "--target",
        str(target),
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--only-binary=:all:",
        "--retries",
        "1",
        "--timeout",
        "30",
        *(f"--platform={tag}" for tag in tags),
        *extra,
        *lines,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode == 0:
        return json.loads(result.stdout), None
    unreachable = UNREACHABLE.search(result.stderr)
    if unreachable:
        return None, f"package registry unreachable ({unreachable.group(0)})"
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    raise AssertionError(f"{platform}: the pins do not resolve: {' '.join(errors) or result.stderr[-2000:]}")


def resolve_setup(setup: str, tmp_path) -> tuple[dict, dict] | str:
    """A setup's pins for its platform: each pin alone, and for the GPU setup the full resolution (but
    SDIST_DEPENDENT's dependencies); or why the registry is unreachable. The Linux CPU setup is resolved in
    full by CI's own install (.ci/run). pip evaluates the markers of dependencies (torch's
    `platform_system == "Linux"` CUDA packages, say) for the machine it runs on, so for macOS and Windows
    only the pins themselves are resolved: each must have a wheel for that platform."""
    platform, files = SETUPS[setup]
    lines = for_platform(files, PLATFORMS[platform][1])
    full = [line for line in lines if canonicalize_name(Requirement(line).name) not in SDIST_DEPENDENT]
    in_full = setup == "linux-gpu" and sys.platform == "linux"
    parts = [("pins", lines, ("--no-deps",))] + ([("full", full, ())] if in_full else [])
    reports = []
    for part, selected, extra in parts:
        report, unreachable = pip_resolve(selected, platform, tmp_path / f"{setup}-{part}", *extra)
        if unreachable:
            return unreachable
        # Public versions: a local build such as torch 2.13.0+cpu satisfies the pin 2.13.0.
        reports.append(
            {
                canonicalize_name(item["metadata"]["name"]): Version(item["metadata"]["version"]).public
                for item in report["install"]
            }
        )
    return tuple(reports)


@pytest.fixture(scope="module")
def resolutions(tmp_path_factory):
    """Every setup resolved side by side: the time is the registry's, not this machine's."""
    tmp_path = tmp_path_factory.mktemp("resolve")
    with ThreadPoolExecutor(len(SETUPS)) as pool:
        futures = {setup: pool.submit(resolve_setup, setup, tmp_path) for setup in SETUPS}
    return {setup: future.exception() or future.result() for setup, future in futures.items()}


@pytest.mark.parametrize("setup", SETUPS)
def test_the_pins_resolve_for_each_platform(resolutions, setup):
    result = resolutions[setup]
    if isinstance(result, Exception):
        raise result
    if isinstance(result, str):
        pytest.skip(result)
    pins, full = result if len(result) == 2 else (result[0], None)
    platform, files = SETUPS[setup]
    expected = {
        canonicalize_name(Requirement(line).name): pinned_version(Requirement(line))
        for line in for_platform(files, PLATFORMS[platform][1])
    }
    assert pins == expected  # each pin alone, at its version, has a wheel for the platform
    if full is None:
        return
    for name, version in full.items():  # and the pins hold in the full resolution
        assert expected.get(name, version) == version, f"{setup}: {name} resolved to {version}, pinned {expected[name]}"
    assert {"keras", "jaxlib", "h5py", "ml-dtypes"} <= set(full)
    if setup == "linux-gpu":
        assert {"nvidia-cudnn-cu12", "jax-cuda12-plugin"} <= set(full)


def test_an_unreachable_registry_is_told_apart_from_a_failed_resolution(tmp_path):
    """The skip above is taken for a registry that does not answer (a closed port here), not for pins that fail."""
    report, unreachable = pip_resolve(
        ["six==1.17.0"], "linux", tmp_path, "--isolated", "--index-url", "http://127.0.0.1:9/simple"
    )
    assert report is None and unreachable.startswith("package registry unreachable (")


def test_markers_pick_the_platforms_tensorflow():
    for platform, build in (("linux", "tensorflow-cpu"), ("windows", "tensorflow-cpu"), ("macos", "tensorflow")):
        names = [Requirement(line).name for line in for_platform(["requirements.txt"], PLATFORMS[platform][1])]
        assert [name for name in names if name.startswith("tensorflow")] == [build]
    assert Marker('sys_platform == "darwin"').evaluate(PLATFORMS["macos"][1])
