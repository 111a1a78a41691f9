"""Dependencies point one way (docs/ARCHITECTURE.md): this fails on any import, at module
level or inside a function, that runs against the stated direction."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "writes", "quotas", "tagging", "workers", "project", "stress", "benchmarks")
# What each top-level package may import of the others (itself always).
ALLOWED = {
    "core": set(),
    "writes": {"core"},
    "quotas": {"core", "writes"},
    "tagging": {"core", "writes"},
    "workers": {"core", "writes"},
    # Configuration wires everything together: settings name apps, urls mount their views,
    # the package loads the Celery app (cookiecutter-django's wiring).
    "project": {"core", "writes", "quotas", "tagging", "workers"},
    # Load tools sit on top.
    "stress": {"core", "writes", "quotas", "tagging", "workers"},
    "benchmarks": {"core", "writes", "quotas", "tagging", "workers", "project", "stress"},
}


def imports_of(path: Path) -> set[str]:
    """The top-level packages of ours that a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in PACKAGES)
    return found


def test_every_import_between_packages_points_the_stated_way():
    wrong = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for imported in imports_of(path) - ALLOWED[package] - {package}:
                wrong.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not wrong, "imports against docs/ARCHITECTURE.md:\n" + "\n".join(wrong)


def test_the_check_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from workers.celery import app\n    import quotas.models\n")
    assert imports_of(sample) == {"workers", "quotas"}


def test_the_load_tools_are_not_a_production_app():
    from django.conf import settings

    base = (ROOT / "project" / "settings" / "base.py").read_text()
    production = (ROOT / "project" / "settings" / "production.py").read_text()
    assert '"stress"' not in base and '"stress"' not in production
    assert "stress" in settings.INSTALLED_APPS  # the test settings add it, as local does
