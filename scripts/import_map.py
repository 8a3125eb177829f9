#!/usr/bin/env python3
"""Import map of the gait_estimator package: which layer imports which, and what breaks the layering.

Usage: ``python scripts/import_map.py [PACKAGE_DIR] [--modules]`` (default: the repository's
``gait_estimator/gait_estimator``). Reads the sources with ``ast`` only (nothing is imported, so
it runs without ROS, torch or the venv), prints the layer graph (``--modules``: every
module-to-module arrow too) and exits 1 when it finds

- a cycle between modules (a strongly connected component of the module graph), or
- an arrow back up the layers: a module importing a module of a higher layer.

Every import counts, wherever it stands: module top, inside a function (a lazy import hides a
cycle at import time but not in the design), or under ``TYPE_CHECKING``.

The layers, bottom to top (``LAYERS``; a module may import its own layer and the ones below):

  root     ``errors``, ``conventions``, the package ``__init__``: shared by everything.
  runtime  the model runtime: the ``ModelRuntime`` interface and its metadata, and the backends.
           Below core because core depends on the interface (DESIGN.md: "Core depends on the
           interface only"); the runtime must never need core.
  core     the ROS-free real-time core, the parameter schema beside it (``core.params``).
  sim      the gait simulator (anthropometry, kinematics, IMU synthesis); uses core's samples.
  data     dataset formats and loaders; builds on sim's models of the body.
  train    architectures, training protocols, export; consumes data and sim.
  replay   rosbag2 reading/writing and offline validation; runs core on recorded or simulated
           data and may use train's evaluation helpers.
  nodes    rclpy adapters: the only layer that imports rclpy, on top of everything ROS-free.
  cli      the ``gait-estimator`` command: starts nodes, runs replay/train/sim; nothing imports it.

The order follows DESIGN.md ("nodes -> core; core never imports rclpy"; nodes and cli on top,
core at the bottom beside params) and, among the middle layers, the direction the code's
dependencies already take, so an arrow the other way is a design change that must be argued.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

LAYERS = ("root", "runtime", "core", "sim", "data", "train", "replay", "nodes", "cli")
RANK = {name: i for i, name in enumerate(LAYERS)}

DEFAULT_PACKAGE = Path(__file__).resolve().parent.parent / "gait_estimator" / "gait_estimator"


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> source file for every ``.py`` under ``package_dir`` (a package)."""
    root = package_dir.name
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [root, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return name in modules and modules[name].name == "__init__.py"


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's own modules that module ``name`` (at ``path``) imports, anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    base_parts = name.split(".") if _is_package(name, modules) else name.split(".")[:-1]
    found: set[str] = set()

    def resolve(dotted: str) -> str | None:
        """The longest prefix of ``dotted`` that is one of the package's modules."""
        parts = dotted.split(".")
        while parts:
            candidate = ".".join(parts)
            if candidate in modules:
                return candidate
            parts.pop()
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = resolve(alias.name)
                if target:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: climb from this module's package
                anchor = base_parts[: len(base_parts) - (node.level - 1)]
                source = ".".join(anchor + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                target = resolve(f"{source}.{alias.name}") if alias.name != "*" else None
                target = target if target and target != source else resolve(source)
                if target:
                    found.add(target)
    found.discard(name)
    return found


def layer_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else "root"


def build_graph(package_dir: Path) -> dict[str, set[str]]:
    modules = module_names(package_dir)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def upward_arrows(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every (importer, imported) whose imported module sits in a higher layer, or an unknown one."""
    bad = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            ls, ld = layer_of(src), layer_of(dst)
            if ls not in RANK or ld not in RANK or RANK[ld] > RANK[ls]:
                bad.append((src, dst))
    return bad


def layer_edges(graph: dict[str, set[str]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for src, targets in graph.items():
        for dst in targets:
            if layer_of(src) != layer_of(dst):
                counts[(layer_of(src), layer_of(dst))] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package_dir", nargs="?", type=Path, default=DEFAULT_PACKAGE)
    parser.add_argument("--modules", action="store_true", help="print every module-to-module arrow")
    args = parser.parse_args(argv)
    package_dir = args.package_dir.resolve()
    if not (package_dir / "__init__.py").is_file():
        parser.error(f"{package_dir}: not a package (no __init__.py)")
    graph = build_graph(package_dir)

    print(f"import map of {package_dir} ({len(graph)} modules)")
    print("layers, bottom to top: " + " < ".join(LAYERS))
    edges = layer_edges(graph)
    for src in sorted({s for s, _ in edges}, key=lambda s: RANK.get(s, len(LAYERS)), reverse=True):
        outs = sorted(((d, n) for (s, d), n in edges.items() if s == src), key=lambda x: RANK.get(x[0], -1))
        print(f"  {src:8s} -> " + ", ".join(f"{d} ({n})" for d, n in outs))
    if args.modules:
        for src, targets in sorted(graph.items()):
            for dst in sorted(targets):
                print(f"  {src} -> {dst}")

    found_cycles = cycles(graph)
    upward = upward_arrows(graph)
    for component in found_cycles:
        print("CYCLE: " + " <-> ".join(component))
    for src, dst in upward:
        print(f"UPWARD: {src} ({layer_of(src)}) -> {dst} ({layer_of(dst)})")
    if found_cycles or upward:
        print(f"FAIL: {len(found_cycles)} cycle(s), {len(upward)} arrow(s) back up the layers")
        return 1
    print("OK: no cycles, no arrow back up the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
