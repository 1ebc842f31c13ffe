"""The package's shape: a cheap ``import tts_gym``, no import cycles, and every cited path present."""
from __future__ import annotations

import ast
import re
import subprocess
import sys

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "tts_gym"


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_import_tts_gym_loads_only_the_package_face():
    """Beyond numpy and numba, ``import tts_gym`` loads the package module alone; gymnasium is
    loaded (and the env registered) only when someone imports it."""
    new = _run("import sys, numpy, numba\nbefore = set(sys.modules)\nimport tts_gym\n"
               "print(sorted(set(sys.modules) - before))")
    assert new == "['tts_gym']"
    registered = _run("import tts_gym, sys\nassert 'gymnasium' not in sys.modules\nimport gymnasium\n"
                      "print('tts_gym/Replay-v0' in gymnasium.registry)")
    assert registered == "True"


def _module_name(path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (function-local imports included)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets |= {base} | {f"{base}.{a.name}" for a in node.names}
        graph[name] = {o for t in targets if t.startswith("tts_gym") and (o := owner(t)) and o != name}
    return graph


def test_no_import_cycles():
    graph = _import_graph()
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


CITED = re.compile(r"(?<![\w/.])((?:docs|tests|benchmarks|agents|examples|data|tts_gym)/[\w./-]+\.(?:md|py|json|png|csv))")


def test_every_cited_repository_path_exists():
    """Paths the code and the docs name (``docs/replay-semantics.md``, ``benchmarks/...``) are in the
    repository."""
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    sources = [p for p in tracked if p.endswith((".py", ".md")) and not p.startswith("docs/_pending")]
    missing = set()
    for rel in sources:
        for cited in CITED.findall((REPO_ROOT / rel).read_text(errors="replace")):
            cited = cited.rstrip(".")
            if not (REPO_ROOT / cited).exists() and not (REPO_ROOT / rel).parent.joinpath(cited).exists():
                missing.add(f"{rel}: {cited}")
    assert sorted(missing) == []


SECTION_CITATION = re.compile(r'replay[- ]semantics(?:\.md)?`*[,:]?\s*\(?((?:"[A-Z][\w@ .-]*"[,\s]*)+)')


def test_replay_semantics_citations_name_existing_sections():
    """``docs/replay-semantics.md``, "Token accounting" -- every section name cited is a heading."""
    doc = (REPO_ROOT / "docs" / "replay-semantics.md").read_text()
    headings = {line.lstrip("#").strip() for line in doc.splitlines() if line.startswith("#")}
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    cited, unknown = set(), set()
    for rel in (p for p in tracked if p.endswith((".py", ".md"))):
        text = " ".join((REPO_ROOT / rel).read_text(errors="replace").split())   # citations may wrap
        for group in SECTION_CITATION.findall(text):
            for name in re.findall(r'"([^"]+)"', group):
                cited.add(name)
                if name not in headings:
                    unknown.add(f"{rel}: {name}")
    assert len(cited) >= 10 and sorted(unknown) == []
