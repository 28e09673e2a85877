"""The registry of refusal ids: every id chronoseal raises, found in its own source with
``ast`` (and in the contract's revert reasons), merged with what each one means
(``_failure_ids.toml``) into ``docs/failure-ids.md``.

An id is found where it is raised: ``id=`` of a :class:`~chronoseal.errors.ChronosealError`
subclass, a ``default_id``, a helper that passes its parameter on as ``id=`` (its callers'
arguments are the ids), the few carriers and tables listed here (ids collected first and
raised later) and the contract's ``assert ..., "ledger..."``. Nothing is skipped silently:
an ``id=`` the walk cannot evaluate must be a listed forward (an id re-raised from
elsewhere), and every string in the source shaped like an id must be a found id or be listed
as something else (an audit check, a log event, a spec location). ``scripts/failure-ids``
writes the file; ``tests/test_failure_ids.py`` fails when it is stale or an id is undescribed.
Standard library only: this is a development tool that reads the package's own files.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DESCRIPTIONS = PACKAGE / "_failure_ids.toml"
DOC = PACKAGE.parents[1] / "docs" / "failure-ids.md"

ID_SHAPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+){1,4}$")
_VYPER_REASON = re.compile(r"""(?:assert\b[^\n]*,|raise)\s*"([a-z][a-z0-9_.]*)"\s*$""", re.M)

#: Calls that carry an id to where it is raised later, as (module, callable) → (position of
#: the id argument, what it becomes). The appraiser collects failures and raises the first
#: (``AppraisalResult.require_accepted``); a review collects problems into ReviewRefused.
CARRIERS: Mapping[tuple[str, str], tuple[int, str]] = {
    ("attest/_appraisal.py", "fail"): (0, "AttestationError"),
    ("attest/_appraisal.py", "warn"): (0, "warning"),
    ("spec/_review.py", "ReviewProblem"): (0, "ReviewRefused"),
    ("analysis/_join.py", "Repair"): (0, "repair"),
}

#: Error classes whose id is not their ``id=`` keyword: → (position, keyword). (ChainRevert
#: takes the chain's revert reason: its ids are the contract's, read from the .vy.)
ID_ARGUMENTS: Mapping[str, tuple[int, str]] = {
    "ReviewRefused": (1, "problems"),
}

#: Module-level tables whose id-shaped strings are raised by a lookup, → what they become.
TABLES: Mapping[tuple[str, str], str] = {
    ("attest/_dcap.py", "_DCAP_ERROR_IDS"): "AttestationError",
    ("attest/_dcap.py", "DCAP_FAILED"): "AttestationError",
}

#: Backend warnings: a TEE backend records these in ``claims.warnings`` (not raised).
WARNING_CONSTANTS: frozenset[str] = frozenset(
    {
        "attest.cca.platform_not_appraised",
        "attest.csv.firmware_not_checked_against_latest",
        "attest.psa.platform_not_appraised",
        "attest.snp.tcb_not_checked_against_latest",
    }
)

#: ``id=`` expressions that pass on an id made elsewhere, as "module:function:expression".
FORWARDS: Mapping[str, str] = {
    "analysis/_runtime.py:_release_for:self.refusal.id": "the refusal the runtime aborted with",
    "attest/_appraisal.py:_authenticity:exc.id": "a TEE backend's own refusal, collected",
    "attest/_appraisal.py:_measurement:exc.id": "a TEE backend's own refusal, collected",
    "attest/_appraisal.py:require_accepted:self.failures[0]": "the appraiser's first fail()",
    "attest/_appraisal.py:_tcb:warning_id": "a backend's warnings (WARNING_CONSTANTS)",
    "attest/_dcap.py:_map_dcap_error:failure_id": "_DCAP_ERROR_IDS or DCAP_FAILED (TABLES)",
    "channel/_intake.py:fetch_release:str(refusal.get('id', 'analysis.release.refused'))": (
        "the analysis runtime's own refusal, relayed to the gateway"
    ),
    "deploy/_plan.py:_sources:exc.id": "a data source's own refusal, with the party named",
    "gateway/_gateway.py:check_task:[(p.id, p.message) for p in problems]": (
        "the party's review problems (ReviewProblem ids)"
    ),
    "node/_lifecycle.py:trained:reason or 'node.task.aborted'": "the abort reason read on chain",
    "node/_demo.py:review_and_approve:problems or [('review.not_approved', 'no approval')]": (
        "the party's review problems (ReviewProblem ids)"
    ),
    "prediction/_client.py:_desensitized:str(header['refused'])": "the runtime's refusal",
    "prediction/_client.py:receipt:str(header['refused'])": "the runtime's refusal, relayed",
}

#: Strings shaped like ids that are not refusals, by what they are.
NOT_IDS: Mapping[str, frozenset[str]] = {
    "audit check ids (verdicts in TaskAudit, documented in docs/audit.md)": frozenset(
        {
            "audit.approvals",
            "audit.attestations",
            "audit.audit_roots",
            "audit.commitments",
            "audit.deadline",
            "audit.history",
            "audit.measurements",
            "audit.model",
            "audit.prediction",
            "audit.proposal",
            "audit.receipts",
            "audit.record",
            "audit.revocations",
            "audit.signatures",
            "audit.transitions",
        }
    ),
    "log events and audit-leaf outcomes": frozenset(
        {
            "agent.chain.back",
            "agent.health",
            "agent.info",
            "agent.starting",
            "feed.received",
            "party.task.approved",
            "party.task.deadline_abort",
            "party.task.pin_revoked",
            "party.task.unknown_spec",
            "party.watching",
            "prediction.attestation.refreshed",
            "prediction.runtime.restarted",
        }
    ),
    "spec problem locations (dotted paths into a task file)": frozenset(
        {
            "join.naive_timezone",
            "join.on",
            "model.family",
            "model.holidays",
            "model.seasonalities",
            "model.target.column",
            "model.target.dataset",
            "task.data_until",
            "task.deadline",
            "task.name",
        }
    ),
    "logger and module names, EAR claim names, file names": frozenset(
        {
            "analysis.json",
            "chronoseal.analysis",
            "chronoseal.analysis._worker",
            "chronoseal.audit",
            "chronoseal.channel",
            "chronoseal.explorer",
            "chronoseal.failures",
            "chronoseal.io",
            "chronoseal.ledger",
            "chronoseal.measurement",
            "chronoseal.model",
            "chronoseal.model._lightgbm",
            "chronoseal.model._statsforecast",
            "chronoseal.node",
            "chronoseal.prediction",
            "chronoseal.tee",
            "chronoseal.warnings",
            "explorer.css",
            "explorer.js",
            "node.key",
            "prediction.json",
            "party.toml",
            "task.toml",
            "task.html",
            "tasks.html",
        }
    ),
}


@dataclass(frozen=True, order=True)
class Site:
    """One place an id is raised (or declared): the id, what it is raised as, where."""

    id: str
    raised_as: str
    where: str


@dataclass
class Registry:
    """What the walk found, and every reason the registry cannot be written as it stands."""

    sites: list[Site] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    literals: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def ids(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for site in self.sites:
            found[site.id].add(site.raised_as)
        return dict(found)


def _sources(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))
    }


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _assignment(stmt: ast.stmt) -> tuple[str, ast.expr] | None:
    """``NAME = value`` or ``NAME: T = value`` as (NAME, value)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target, value = stmt.targets[0], stmt.value
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        target, value = stmt.target, stmt.value
    else:
        return None
    return (target.id, value) if isinstance(target, ast.Name) else None


def _id_strings(node: ast.AST) -> Iterator[ast.Constant]:
    """The id-shaped string constants anywhere under ``node``."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
            if ID_SHAPE.match(inner.value):
                yield inner


def _error_classes(trees: Mapping[str, ast.Module]) -> dict[str, str | None]:
    """Every ChronosealError subclass by name, with its ``default_id``."""
    classes: dict[str, str | None] = {}
    defs = [n for t in trees.values() for n in ast.walk(t) if isinstance(n, ast.ClassDef)]
    known = {"ChronosealError"}
    grew = True
    while grew:
        grew = False
        for cls in defs:
            if cls.name not in known and any(_base_name(b) in known for b in cls.bases):
                known.add(cls.name)
                grew = True
    for cls in defs:
        if cls.name not in known:
            continue
        default = None
        for stmt in cls.body:
            assigned = _assignment(stmt)
            if assigned and assigned[0] == "default_id" and isinstance(assigned[1], ast.Constant):
                default = str(assigned[1].value)
        classes[cls.name] = default
    return classes


def _module_of(importer: str, level: int, module: str | None) -> str:
    """The relative path of the module ``from ... import`` names, as a key of the trees."""
    if level == 0:
        parts = (module or "").split(".")[1:]
    else:
        parts = importer.split("/")[:-1]
        parts = parts[: len(parts) - (level - 1)] + ((module or "").split(".") if module else [])
    return "/".join(parts)


def _resolve_path(trees: Mapping[str, ast.Module], stem: str) -> str | None:
    for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
        if candidate in trees:
            return candidate
    return None


class _Walk:
    def __init__(self, sources: Mapping[str, str]) -> None:
        self.trees = {path: ast.parse(text, path) for path, text in sources.items()}
        self.classes = _error_classes(self.trees)
        self.registry = Registry()
        self.constants: dict[str, dict[str, str]] = {p: {} for p in self.trees}
        self.imports: dict[str, dict[str, tuple[str, str]]] = {p: {} for p in self.trees}
        # (module, callable) → (id parameter position, its name, what it raises)
        self.helpers: dict[tuple[str, str], tuple[int, str, str]] = {}
        self.forwards_seen: set[str] = set()
        self._scan_modules()

    def _scan_modules(self) -> None:
        for path, tree in self.trees.items():
            for stmt in tree.body:
                assigned = _assignment(stmt)
                if assigned is not None and isinstance(assigned[1], ast.Constant):
                    if isinstance(assigned[1].value, str):
                        self.constants[path][assigned[0]] = assigned[1].value
                if isinstance(stmt, ast.ImportFrom):
                    source = _resolve_path(self.trees, _module_of(path, stmt.level, stmt.module))
                    for alias in stmt.names:
                        if source is not None:
                            self.imports[path][alias.asname or alias.name] = (source, alias.name)
        for (module, name), (position, raised_as) in CARRIERS.items():
            self.helpers[(module, name)] = (position, "", raised_as)

    def _lookup(self, path: str, name: str) -> tuple[str, str]:
        """Where a name used in ``path`` is defined: (module, name)."""
        return self.imports[path].get(name, (path, name))

    def _constant(self, path: str, name: str) -> str | None:
        module, real = self._lookup(path, name)
        return self.constants.get(module, {}).get(real)

    def _callee(self, path: str, call: ast.Call) -> tuple[str, int | None, str] | None:
        """What a call raises and where its id is: (raised as, positional index or None for
        ``id=``, keyword name)."""
        name = _base_name(call.func)
        if name is None:
            return None
        if name in self.classes:
            position, keyword = ID_ARGUMENTS.get(name, (-1, "id"))
            return name, (position if position >= 0 else None), keyword
        module, real = self._lookup(path, name)
        if isinstance(call.func, ast.Attribute):
            owner = call.func.value
            alias = self._lookup(path, owner.id) if isinstance(owner, ast.Name) else None
            target = None
            if alias is not None and alias[0].endswith("__init__.py"):
                target = _resolve_path(self.trees, f"{alias[0][: -len('/__init__.py')]}/{alias[1]}")
            module, real = (target, name) if target is not None else (path, name)
        helper = self.helpers.get((module, real))
        if helper is None:
            return None
        position, keyword, raised_as = helper
        return raised_as, position, keyword

    @staticmethod
    def _argument(call: ast.Call, position: int | None, keyword: str) -> ast.expr | None:
        for kw in call.keywords:
            if kw.arg == keyword and keyword:
                return kw.value
        if position is not None and position < len(call.args):
            return call.args[position]
        return None

    def _functions(self) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, str]]:
        for path, tree in self.trees.items():
            stack: list[tuple[ast.AST, str]] = [(tree, "")]
            while stack:
                node, _ = stack.pop()
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                        yield path, child, child.name
                    stack.append((child, ""))

    def find_helpers(self) -> None:
        """Functions that pass a parameter on as the id of what they raise, to a fixpoint."""
        grew = True
        while grew:
            grew = False
            for path, func, name in self._functions():
                if (path, name) in self.helpers:
                    continue
                params = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
                if params and params[0] in ("self", "cls"):
                    params = params[1:]
                params += [a.arg for a in func.args.kwonlyargs]
                for call in _calls(func):
                    callee = self._callee(path, call)
                    if callee is None:
                        continue
                    arg = self._argument(call, callee[1], callee[2])
                    if isinstance(arg, ast.Name) and arg.id in params:
                        index = params.index(arg.id)
                        self.helpers[(path, name)] = (index, arg.id, callee[0])
                        self._defaults(path, func, arg.id, callee[0])
                        grew = True
                        break

    def _defaults(
        self, path: str, func: ast.FunctionDef | ast.AsyncFunctionDef, param: str, raised: str
    ) -> None:
        names = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
        given = func.args.defaults
        defaults: dict[str, ast.expr] = dict(
            zip(names[len(names) - len(given) :], given, strict=True)
        )
        for arg, default in zip(func.args.kwonlyargs, func.args.kw_defaults, strict=True):
            if default is not None:
                defaults[arg.arg] = default
        default = defaults.get(param)
        if isinstance(default, ast.Constant) and isinstance(default.value, str):
            self._site(default.value, raised, f"{path}:{default.lineno}")

    def _site(self, ident: str, raised_as: str, where: str) -> None:
        self.registry.sites.append(Site(ident, raised_as, where))

    def _evaluate(
        self,
        path: str,
        where: str,
        expr: ast.expr,
        raised_as: str,
        func: ast.FunctionDef | ast.AsyncFunctionDef | None = None,
    ) -> bool:
        """Record the ids ``expr`` can be; False when part of it is not an id written here."""
        if isinstance(expr, ast.Constant):
            if isinstance(expr.value, str):
                self._site(expr.value, raised_as, f"{path}:{expr.lineno}")
            return expr.value is None or isinstance(expr.value, str)
        if isinstance(expr, ast.Name):
            value = self._constant(path, expr.id)
            if value is not None:
                self._site(value, raised_as, f"{path}:{expr.lineno}")
                return True
            own = list(_walk_own(func)) if func is not None else []
            assigned = [
                n.value
                for n in own
                if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == expr.id for t in n.targets)
            ]
            looped = [
                n.iter
                for n in own
                if isinstance(n, ast.For)
                and any(isinstance(t, ast.Name) and t.id == expr.id for t in ast.walk(n.target))
            ]
            results = [self._evaluate(path, where, v, raised_as) for v in assigned]
            for iterable in looped:  # ids written in the loop's own table
                written = list(_id_strings(iterable))
                for constant in written:
                    self._site(str(constant.value), raised_as, f"{path}:{constant.lineno}")
                results.append(bool(written))
            return bool(results) and all(results)
        if isinstance(expr, ast.IfExp):
            return all(
                [
                    self._evaluate(path, where, expr.body, raised_as),
                    self._evaluate(path, where, expr.orelse, raised_as),
                ]
            )
        for constant in _id_strings(expr):
            self._site(str(constant.value), raised_as, f"{path}:{constant.lineno}")
        return False

    def collect(self) -> None:
        self.find_helpers()
        for cls, default in self.classes.items():
            if default is not None:
                self._site(default, cls, "default_id")
        for path, func, name in self._functions():
            helper = self.helpers.get((path, name))
            own_param = helper[1] if helper is not None else None
            for call in _calls(func):
                callee = self._callee(path, call)
                if callee is None:
                    continue
                arg = self._argument(call, callee[1], callee[2])
                if arg is None or (isinstance(arg, ast.Name) and arg.id == own_param):
                    continue
                if not self._evaluate(path, name, arg, callee[0], func):
                    key = f"{path}:{name}:{ast.unparse(arg)}"
                    self.forwards_seen.add(key)
                    if key not in FORWARDS:
                        self.registry.problems.append(
                            f"{path}:{call.lineno}: {ast.unparse(arg)} is not an id written "
                            "here: write the id (no f-string), or list it in FORWARDS as "
                            f"{key!r} with where it comes from"
                        )
        self._module_level_calls()
        self._tables()
        for stale in sorted(set(FORWARDS) - self.forwards_seen):
            self.registry.problems.append(f"FORWARDS lists {stale!r}, which is gone")

    def _module_level_calls(self) -> None:
        """Calls outside any function (class bodies, module constants)."""
        for path, tree in self.trees.items():
            for stmt in tree.body:
                if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    continue
                for call in (n for n in ast.walk(stmt) if isinstance(n, ast.Call)):
                    callee = self._callee(path, call)
                    arg = None if callee is None else self._argument(call, callee[1], callee[2])
                    if callee is not None and arg is not None:
                        self._evaluate(path, "<module>", arg, callee[0])

    def _tables(self) -> None:
        for (path, name), raised_as in TABLES.items():
            tree = self.trees.get(path)
            found = False
            for stmt in tree.body if tree is not None else []:
                assigned = _assignment(stmt)
                if assigned is not None and assigned[0] == name:
                    found = True
                    for constant in _id_strings(assigned[1]):
                        self._site(str(constant.value), raised_as, f"{path}:{constant.lineno}")
            if not found:
                self.registry.problems.append(f"TABLES lists {path}:{name}, which is gone")

    def literals(self) -> None:
        for path, tree in self.trees.items():
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if ID_SHAPE.match(node.value):
                        self.registry.literals[node.value].append(f"{path}:{node.lineno}")


def _walk_own(func: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """A function's own body (a nested function is walked on its own)."""
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _calls(func: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.Call]:
    return (node for node in _walk_own(func) if isinstance(node, ast.Call))


def _contract_sites(root: Path) -> Iterator[Site]:
    for path in sorted(root.glob("ledger/contracts/*.vy")):
        text = path.read_text(encoding="utf-8")
        for match in _VYPER_REASON.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            yield Site(match.group(1), "ChainRevert", f"{path.relative_to(root)}:{line}")


def collect(root: Path = PACKAGE, extra: Mapping[str, str] | None = None) -> Registry:
    """Every id raised under ``root`` (``extra`` adds modules, as path → source text)."""
    walk = _Walk({**_sources(root), **(extra or {})})
    walk.collect()
    walk.literals()
    registry = walk.registry
    registry.sites.extend(_contract_sites(root))
    for ident in WARNING_CONSTANTS:
        registry.sites.append(Site(ident, "warning", "backend claims.warnings"))
    found = registry.ids()
    not_ids = {s for group in NOT_IDS.values() for s in group}
    for literal, where in sorted(registry.literals.items()):
        if (
            literal in found
            or literal in not_ids
            or literal.split(".")[0] not in _components(found)
        ):
            continue
        registry.problems.append(
            f"{where[0]}: {literal!r} looks like a refusal id but no raise of it was found: "
            "raise it through an error class or a listed carrier, or list it in NOT_IDS"
        )
    for literal in sorted(not_ids & set(found)):
        registry.problems.append(f"NOT_IDS lists {literal!r}, which is raised as an id")
    registry.sites.sort()
    return registry


def _components(found: Iterable[str]) -> set[str]:
    return {ident.split(".")[0] for ident in found}


def load_descriptions(path: Path = DESCRIPTIONS) -> dict[str, dict[str, str]]:
    with path.open("rb") as handle:
        raw = tomllib.load(handle)
    return {str(k): {str(f): str(v) for f, v in dict(v).items()} for k, v in raw.items()}


def check(registry: Registry, descriptions: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Everything that stops the registry being written: the walk's own problems, ids with
    no description, descriptions of ids the code no longer raises, incomplete entries."""
    problems = list(registry.problems)
    found = registry.ids()
    for ident in sorted(set(found) - set(descriptions)):
        problems.append(f"{ident} (raised as {', '.join(sorted(found[ident]))}) is undescribed")
    for ident in sorted(set(descriptions) - set(found)):
        problems.append(f"{ident} is described but no longer raised anywhere")
    for ident, entry in sorted(descriptions.items()):
        missing = [f for f in ("what", "todo") if not entry.get(f, "").strip()]
        extra = sorted(set(entry) - {"what", "todo"})
        if missing or extra:
            problems.append(
                f"{ident}: needs exactly 'what' and 'todo' (missing {missing}, extra {extra})"
            )
    return problems


_TITLES = {
    "analysis": "Analysis runtime",
    "attest": "Attestation",
    "audit": "Audit",
    "channel": "Secure channel",
    "chronoseal": "Anywhere",
    "config": "Configuration",
    "data": "Data sources and privacy",
    "deploy": "Deployment",
    "explorer": "Explorer",
    "gateway": "Gateway",
    "ledger": "Ledger and contract",
    "model": "Model bundles",
    "node": "Node (agents)",
    "prediction": "Prediction runtime",
    "review": "Party review",
    "run": "Multi-process run",
    "spec": "Task specification",
}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(registry: Registry, descriptions: Mapping[str, Mapping[str, str]]) -> str:
    found = registry.ids()
    lines = [
        "# Refusal ids",
        "",
        "<!-- Generated by scripts/failure-ids from the code and "
        "src/chronoseal/_failure_ids.toml: edit those, not this file. -->",
        "",
        "Every refusal chronoseal makes on purpose carries a stable dotted id "
        "(`component.subject.reason`) that appears unchanged in CLI output (`error [id] "
        "message`), logs, JSON reports and, for refusals on chain, as the contract's revert "
        "reason or a task's abort reason. This is every id the code raises, found in the "
        "source (`tests/test_failure_ids.py` fails when one is missing here). *Raised as* is "
        "the exception class (the tree is drawn in `chronoseal.errors`); `warning` marks an "
        "appraisal warning, recorded in the result rather than raised.",
        "",
        f"{len(found)} ids.",
        "",
    ]
    groups: dict[str, list[str]] = defaultdict(list)
    for ident in sorted(found):
        groups[ident.split(".")[0]].append(ident)
    for component in sorted(groups, key=lambda c: (_TITLES.get(c, c), c)):
        lines += [f"## {_TITLES.get(component, component)} (`{component}.*`)", ""]
        lines += ["| id | raised as | what happened | what to do |", "|---|---|---|---|"]
        for ident in groups[component]:
            entry = descriptions.get(ident, {})
            raised = ", ".join(f"`{c}`" for c in sorted(found[ident]))
            lines.append(
                f"| `{ident}` | {raised} | {_cell(entry.get('what', ''))} "
                f"| {_cell(entry.get('todo', ''))} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    registry = collect()
    descriptions = load_descriptions()
    problems = check(registry, descriptions)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"{len(problems)} problem(s); docs/failure-ids.md not written", file=sys.stderr)
        return 1
    text = render(registry, descriptions)
    if "--check" in argv:
        if DOC.read_text(encoding="utf-8") != text:
            print("docs/failure-ids.md is stale: run scripts/failure-ids", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC} ({len(registry.ids())} ids)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
