"""The package layout holds: training and evaluation share ``memlora_engine.data`` and never import each other,
production code never imports the test fakes, and only the commands import the commands."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import memlora_engine

ENGINE = Path(memlora_engine.__file__).parent
INTEGRATIONS = ENGINE.parent / "memlora_integrations"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ENGINE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions (relative imports resolved)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    return _imported(path.read_text(encoding="utf-8"), package)


def _imported(source: str, package: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # ``from pkg import module``
    return found


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _offenders(files: list[Path], forbidden: str) -> list[str]:
    return [
        f"{path.relative_to(ENGINE.parent)} imports {name}"
        for path in files
        for name in sorted(_imports(path))
        if name == forbidden or name.startswith(forbidden + ".")
    ]


@pytest.mark.parametrize(("package", "other"), [("training", "evaluation"), ("evaluation", "training")])
def test_training_and_evaluation_never_import_each_other(package: str, other: str) -> None:
    files = _files(ENGINE / package)
    assert files
    assert _offenders(files, f"memlora_engine.{other}") == []


def test_training_and_evaluation_share_the_data_package() -> None:
    for package in ("training", "evaluation"):
        assert any(_offenders([path], "memlora_engine.data") for path in _files(ENGINE / package)), package


def test_production_code_never_imports_the_test_fakes() -> None:
    files = [p for p in _files(ENGINE) + _files(INTEGRATIONS) if p != ENGINE / "testing.py"]
    assert _offenders(files, "memlora_engine.testing") == []


def test_only_the_commands_import_the_commands() -> None:
    files = [p for p in _files(ENGINE) + _files(INTEGRATIONS) if (ENGINE / "commands") not in p.parents]
    assert _offenders(files, "memlora_engine.commands") == []


def test_the_walk_sees_every_spelling_of_an_import() -> None:
    assert "memlora_engine.training.trainer" in _imports(ENGINE / "training" / "search.py")
    lazy = "def f():\n    from memlora_engine import evaluation\n"
    relative = "from ..evaluation.runner import run_config\n"
    plain = "import memlora_engine.evaluation.vqa as vqa\n"
    for source in (lazy, relative, plain):
        assert [n for n in _imported(source, "memlora_engine.training") if n.startswith("memlora_engine.evaluation")]


def test_the_offline_embedder_is_one_class_under_two_names() -> None:
    from memlora_engine.embeddings import HashingEmbedder
    from memlora_engine.testing import DeterministicEmbedder

    assert DeterministicEmbedder is HashingEmbedder
    assert HashingEmbedder().name == "deterministic-64"  # recorded with stored memories and runs: unchanged
