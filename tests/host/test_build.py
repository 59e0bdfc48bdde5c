"""What goes on a node builds: every manifest file compiles with mpy-cross, the
manifest covers the node's packages, and the `citynode` wheel carries the right
packages and the firmware files.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from citynode import paths
from citynode.errors import CitynodeError

ROOT = Path(__file__).resolve().parents[2]
# The node's packages: every .py below them must be in the manifest.
NODE_PACKAGES = ("firmware/citynode_fw", "protocol/citynode_protocol")
# ESP32 MicroPython runs native code for this architecture.
MARCH = "xtensawin"


def mpy_cross_command():
    beside = Path(sys.executable).parent / "mpy-cross"
    if beside.exists():
        return str(beside)
    found = shutil.which("mpy-cross")
    if not found:
        pytest.fail("mpy-cross is not installed: run `make` (requirements/dev.txt pins mpy-cross)")
    return found


def _node_files():
    try:
        files = paths.firmware_files(missing_ok=True)
    except CitynodeError as exc:
        return [pytest.param(None, None, str(exc), id="manifest")]
    return [pytest.param(src, node_path, None, id=node_path) for src, node_path in files]


@pytest.mark.parametrize("source, node_path, problem", _node_files())
def test_compiles_with_mpy_cross(source, node_path, problem, tmp_path):
    if problem:
        pytest.fail(problem, pytrace=False)
    out = tmp_path / "out.mpy"
    done = subprocess.run(
        [mpy_cross_command(), "-march=" + MARCH, "-s", node_path, "-o", str(out), str(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.fail(
            "mpy-cross cannot compile %s (-> %s on the node):\n%s"
            % (source.relative_to(ROOT) if source.is_relative_to(ROOT) else source, node_path, done.stdout.decode()),
            pytrace=False,
        )
    assert out.stat().st_size > 0


def _has_python(folder):
    return folder.is_dir() and any(folder.rglob("*.py"))


def test_manifest_sources_exist():
    """Every manifest line names something that exists, once its tree has any code at all."""
    root = paths.source_root()
    missing = []
    waiting = []
    for source, node_path in paths.manifest_entries():
        if (root / source).exists():
            continue
        tree = root / source.split("/", 1)[0]
        (missing if _has_python(tree) else waiting).append(source)
    assert not missing, "firmware/manifest.txt lists missing files: %s" % ", ".join(missing)
    if waiting:
        pytest.skip("not written yet: %s" % ", ".join(waiting))


def test_manifest_covers_node_packages():
    root = paths.source_root()
    listed = {Path(src).resolve() for src, _ in paths.firmware_files(missing_ok=True)}
    uncovered = []
    for package in NODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            if path.resolve() not in listed:
                uncovered.append(str(path.relative_to(root)))
    assert not uncovered, "not in firmware/manifest.txt, so never deployed: %s" % ", ".join(uncovered)


def test_node_paths_are_unique_and_python():
    files = paths.firmware_files(missing_ok=True)
    node_paths = [n for _, n in files]
    assert len(node_paths) == len(set(node_paths))
    assert all(n.endswith(".py") and not n.startswith("/") for n in node_paths), node_paths
    assert "config.json" not in node_paths and "calib.json" not in node_paths


def test_mpy_cross_output_loads_in_the_unix_port(tmp_path):
    """The pinned mpy-cross and the pinned Unix port agree on the .mpy version."""
    (tmp_path / "probe.py").write_text("def answer():\n    return 42\n")
    done = subprocess.run(
        [mpy_cross_command(), "-o", str(tmp_path / "probe.mpy"), str(tmp_path / "probe.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout.decode()
    (tmp_path / "probe.py").unlink()
    micropython = Path(sys.executable).parent / "micropython"
    assert micropython.exists(), "the MicroPython Unix port is not installed: run `make`"
    done = subprocess.run(
        [str(micropython), "-c", "import sys; sys.path.insert(0, '%s'); import probe; print(probe.answer())" % tmp_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
    )
    assert done.stdout.decode().strip() == "42", done.stdout.decode()


# --- the wheel ---------------------------------------------------------------


def test_pyproject_lists_every_subpackage():
    """[tool.setuptools] packages is an explicit list: a new subpackage must be added to it."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for name, folder in (("citynode", ROOT / "host" / "citynode"), ("citynode_protocol", ROOT / "protocol" / "citynode_protocol")):
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder)
            if "__pycache__" not in rel.parts:
                found.add(".".join((name,) + rel.parts))
    missing = sorted(found - listed)
    assert not missing, "add %s to `packages` under [tool.setuptools] in pyproject.toml, or a real install lacks it" % (
        ", ".join('"%s"' % m for m in missing)
    )


def _copy_source(dest):
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc", "build")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for folder in ("host", "protocol", "firmware"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the checkout (the checkout itself stays clean)."""
    src = tmp_path_factory.mktemp("src")
    out = tmp_path_factory.mktemp("wheel")
    _copy_source(src)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout.decode()
    (built,) = out.glob("citynode-0.1.0-*.whl")
    return built


def _repo_files(folder, pattern):
    base = ROOT / folder
    return {p.relative_to(base).as_posix() for p in base.rglob(pattern) if "__pycache__" not in p.parts}


def test_wheel_installs_only_citynode_and_citynode_protocol(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"citynode", "citynode_protocol", "citynode-0.1.0.dist-info"}, sorted(top)
    entry_points = zipfile.ZipFile(wheel).read("citynode-0.1.0.dist-info/entry_points.txt").decode()
    assert "citynode = citynode.cli:main" in entry_points


def test_wheel_has_every_host_and_protocol_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"citynode/" + f for f in _repo_files("host/citynode", "*.py")}
    expected |= {"citynode_protocol/" + f for f in _repo_files("protocol/citynode_protocol", "*.py")}
    missing = sorted(expected - names)
    assert not missing, "missing from the wheel (add the subpackage to [tool.setuptools] packages): %s" % missing


def test_wheel_carries_the_firmware_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"citynode/_data/firmware/" + f for f in _repo_files("firmware", "*.py")}
    expected.add("citynode/_data/firmware/manifest.txt")
    expected |= {
        "citynode/_data/protocol/citynode_protocol/" + f for f in _repo_files("protocol/citynode_protocol", "*.py")
    }
    missing = sorted(expected - names)
    assert not missing, "firmware files missing from the wheel: %s" % missing


def test_installed_wheel_finds_its_firmware(wheel, tmp_path):
    """Installed (not editable), citynode.paths uses the package data; no `host` or `protocol` package."""
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(target), str(wheel)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout.decode()
    probe = (
        "import importlib.util, sys\n"
        "import citynode, citynode.paths as p\n"
        "assert citynode.__file__.startswith(%r), citynode.__file__\n"
        "assert importlib.util.find_spec('host') is None and importlib.util.find_spec('protocol') is None\n"
        "root = p.firmware_root()\n"
        "assert str(root).startswith(%r), root\n"
        "files = p.firmware_files(missing_ok=True)\n"
        "assert all(s.is_file() for s, _ in files)\n"
        "print(len(files))\n"
    ) % (str(target), str(target))
    env = dict(os.environ, PYTHONPATH=str(target))
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert done.returncode == 0, done.stdout.decode()
    assert int(done.stdout.decode().split()[-1]) == len(paths.firmware_files(missing_ok=True))
    done = subprocess.run(
        [sys.executable, "-m", "citynode", "--help"], cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert done.returncode == 0 and b"usage: citynode" in done.stdout, done.stdout.decode()


def test_wheel_carries_the_pg_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"citynode/fleet/pg_migrations/" + f for f in _repo_files("host/citynode/fleet/pg_migrations", "*.sql")}
    assert expected and not expected - names, "add the .sql files to [tool.setuptools.package-data]"
