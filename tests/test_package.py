"""The shape of the package, as docs/architecture.md draws it: folders by stage, each using only
those below it; the public names of every module (`__all__`) exist and are documented; one
exception root."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import ei_assets
from ei_assets.errors import EiAssetsError

PACKAGE = Path(ei_assets.__file__).parent
ARCHITECTURE = Path(__file__).parent.parent / "docs" / "architecture.md"

# Bottom to top: a unit (a top-level module or folder of ei_assets) imports only units of lower
# layers; in the bottom layer, records, they import each other. The simulator stands beside the
# rest and imports none of it.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "settings", "schema", "snapshot", "chunks", "progress", "memory", "studio"}),
    frozenset({"ingest", "storage"}),
    frozenset({"warehouse"}),
    frozenset({"pipeline", "report"}),
    frozenset({"dagster"}),
    frozenset({"definitions"}),
    frozenset({"cli", "dev", "k8s"}),
)
BESIDE = "simulator"


def units() -> dict[str, Path]:
    """Every top-level module and folder of the package, by name."""
    found = {}
    for path in PACKAGE.iterdir():
        if path.name.startswith("_") or path.name == "__pycache__":
            continue
        if path.suffix == ".py":
            found[path.stem] = path
        elif path.is_dir() and (path / "__init__.py").exists():
            found[path.name] = path
    return found


def layer(unit: str) -> int:
    if unit == BESIDE:
        return -1
    return next(i for i, members in enumerate(LAYERS) if unit in members)


def imported_units(path: Path) -> set[str]:
    """The units of ei_assets that the modules under `path` import, anywhere in their code."""
    found = set()
    for file in [path] if path.is_file() else path.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ei_assets."):
                found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("ei_assets.")}
    return found


def test_every_unit_has_its_layer() -> None:
    placed = {u for members in LAYERS for u in members} | {BESIDE}
    assert set(units()) == placed


@pytest.mark.parametrize("unit", sorted(units()))
def test_a_unit_uses_only_those_below_it(unit: str) -> None:
    uses = imported_units(units()[unit]) - {unit}
    if unit == BESIDE:
        assert uses == set(), f"the simulator imports {uses}"
        return
    wrong = {u for u in uses if u != BESIDE and not (layer(u) < layer(unit) or layer(u) == layer(unit) == 0)}
    wrong |= {u for u in uses if u == BESIDE and layer(unit) < len(LAYERS) - 1}
    assert not wrong, f"{unit} (layer {layer(unit)}) imports {sorted(wrong)} from its layer or above"


def test_the_architecture_page_draws_the_package_as_it_is() -> None:
    tree = ARCHITECTURE.read_text().split("```text", 1)[1].split("```", 1)[0]
    drawn = set(re.findall(r"^ {2}([a-z0-9_]+)(?:/|\.py)", tree, flags=re.M))
    assert drawn == set(units())


def modules() -> list[str]:
    names = []
    for module in pkgutil.walk_packages(ei_assets.__path__, "ei_assets."):
        if module.name != "ei_assets.k8s":  # its import needs the scale extra
            names.append(module.name)
    return names


@pytest.mark.parametrize("name", modules())
def test_public_names_exist_and_public_classes_say_what_they_are(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", [])
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ names {member}, which it does not have"
    classes = {n: c for n, c in vars(module).items()
               if inspect.isclass(c) and c.__module__ == name and n.isidentifier() and not n.startswith("_")}
    for class_name, cls in classes.items():
        assert cls.__doc__ and cls.__doc__.strip(), f"{name}.{class_name} has no docstring"
        if issubclass(cls, Exception):
            assert issubclass(cls, EiAssetsError), f"{name}.{class_name} is not an EiAssetsError"
