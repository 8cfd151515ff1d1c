"""The distribution builds and holds what it needs: a wheel and an sdist of mlx-memtune, with the
report templates, every imported dependency declared, and the ``mlxtune`` command; the built wheel
imports and renders a report on its own (not from this checkout)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted(p.name for p in (ROOT / "mlxtune" / "templates").iterdir())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


def test_the_wheel_is_mlx_memtune_with_its_templates_dependencies_and_command(built: Path) -> None:
    (wheel,) = built.glob("mlx_memtune-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(meta_name).decode())
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert metadata["Name"] == "mlx-memtune" and metadata["License-Expression"] == "MIT"
    required = " ".join(metadata.get_all("Requires-Dist"))
    for package in ("numpy", "pandas", "scipy", "tokenizers", "transformers", "mlx-lm", "matplotlib",
                    "jinja2"):
        assert package in required, package
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("mlxtune/templates/")) == TEMPLATES
    assert "mlxtune/workloads/chat.py" in names
    assert "mlxtune = mlxtune.cli:main" in entry_points


def test_the_sdist_holds_the_sources_and_templates(built: Path) -> None:
    (sdist,) = built.glob("mlx_memtune-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [n.split("/", 1)[1] for n in archive.getnames() if "/" in n]
    assert "pyproject.toml" in names and "README.md" in names
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("mlxtune/templates/")) == TEMPLATES


def test_the_installed_wheel_renders_a_report_on_its_own(built: Path, tmp_path: Path) -> None:
    (wheel,) = built.glob("mlx_memtune-*.whl")
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, timeout=300)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(target)!r})
        sys.path.insert(1, {str(ROOT / "tests")!r})
        import mlxtune
        assert mlxtune.__file__.startswith({str(target)!r}), mlxtune.__file__
        from sweep_data import make_result
        print(mlxtune.SweepResult.to_html(make_result(), {str(tmp_path / "r.html")!r}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<h1>mlxtune report" in (tmp_path / "r.html").read_text()
