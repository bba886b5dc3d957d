"""What the workspace's Python files say about services, read with ``ast`` (never imported or executed).

``parse_module`` turns one file's source into a ``ModuleIndex``: its classes (with bases, docstring,
explicit ``name``, ``Input``/``Output`` fields and ``handle`` problems), its ``invoke``/``ainvoke``/
``invoke_async`` calls (the exact range of the service-name string and the payload literal's keys), its
``self.out.<kind>["name"]`` connections (``outgoing``), its ``self.publish("topic"`` topics (``topics``)
and its syntax error; a file that does not parse still gives what ``recovery`` reads of its whole statements.
``WorkspaceIndex`` keeps every file and resolves, across files, which classes are services (direct ``Service``
subclasses and subclasses of other workspace services) and their names, using ``splice.server.core.naming``.
Every position is 0-based, with columns in UTF-16 code units (LSP's).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from splice.server.core import check_module_path, module_name, service_name

from .outgoing import OutgoingUse, outgoing_uses
from .positions import Lines, Range, str_index, utf16_column
from .recovery import recover
from .topics import TopicUse, topic_uses

INVOKE_METHODS = ("invoke", "ainvoke", "invoke_async")
HOOKS = ("handle", "before_handle", "after_handle")


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool
    default: str | None = None


@dataclass(frozen=True)
class ClassInfo:
    """A class as written in one file; whether it is a service is decided by ``WorkspaceIndex``."""

    name: str
    range: Range
    """The class name in ``class Name(...)``."""
    bases: tuple[str, ...]
    doc: str
    explicit_name: str | None
    explicit_name_range: Range | None
    abstract: bool
    input: tuple[Field, ...] | None
    output: tuple[Field, ...] | None
    hooks: frozenset[str]
    """Which of ``handle``/``before_handle``/``after_handle`` the class itself defines."""
    hook_problems: tuple[tuple[str, Range], ...]
    is_async: bool
    declares: frozenset[str] = frozenset()
    """Which of ``Input``/``Output`` the class itself declares; one whose fields this file cannot tell (a base
    model defined elsewhere, or one with a line that does not parse) is declared, with ``None`` fields."""
    unparsed: bool = False
    """Part of the class did not parse (a half-typed line): a hook it seems to lack may be on that line."""


@dataclass(frozen=True)
class PayloadKey:
    name: str
    range: Range


@dataclass(frozen=True)
class InvokeCall:
    method: str
    service: str
    range: Range
    """The service name's text inside the quotes."""
    keys: tuple[PayloadKey, ...] | None
    """The payload dict literal's string keys, or ``None`` when the payload is not a plain dict literal."""


@dataclass(frozen=True)
class SyntaxProblem:
    message: str
    range: Range


@dataclass(frozen=True)
class ModuleIndex:
    path: str
    """Relative to the workspace root, with '/'."""
    module: str | None
    """The dotted module name, or ``None`` when the path cannot be a module."""
    classes: tuple[ClassInfo, ...] = ()
    invokes: tuple[InvokeCall, ...] = ()
    syntax_error: SyntaxProblem | None = None
    """While the file does not parse, the rest is what ``recovery`` could read of it (maybe nothing)."""
    outgoing: tuple[OutgoingUse, ...] = ()
    topics: tuple[TopicUse, ...] = ()


@dataclass(frozen=True)
class ServiceDef:
    """A workspace class that is a service, with everything resolved across files."""

    name: str
    path: str
    module: str
    cls: ClassInfo
    input: tuple[Field, ...] | None
    output: tuple[Field, ...] | None
    has_handle: bool


def relative_module(path: str) -> str | None:
    return None if check_module_path(path) else module_name(path)


def parse_module(path: str, source: str) -> ModuleIndex:
    """Everything the language server needs from one file.

    A file that does not parse gives its syntax error and what ``recovery`` reads of its whole statements.
    """
    module = relative_module(path)
    problem: SyntaxProblem | None = None
    holes: frozenset[int] = frozenset()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        problem = _syntax_problem(exc, source)
        recovered = recover(source)
        if recovered is None:
            return ModuleIndex(path, module, syntax_error=problem)
        tree, holes = recovered.tree, recovered.holes
    except ValueError as exc:  # e.g. a NUL byte
        return ModuleIndex(path, module, syntax_error=SyntaxProblem(str(exc), Range(0, 0, 0, 0)))
    lines = Lines(source)
    defined: dict[str, ast.ClassDef] = {}
    for node in (*tree.body, *ast.walk(tree)):  # a module-level class wins over a nested one of the same name
        if isinstance(node, ast.ClassDef):
            defined.setdefault(node.name, node)
    classes = tuple(
        _class_info(node, lines, defined, holes) for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
    )
    invokes = tuple(call for node in ast.walk(tree) if (call := _invoke_call(node, lines)) is not None)
    return ModuleIndex(path, module, classes, invokes, problem, outgoing_uses(tree, lines), topic_uses(tree, lines))


def _holed(node: ast.stmt, holes: frozenset[int]) -> bool:
    """Whether a line of ``node`` did not parse (and so is missing from it)."""
    return bool(holes) and any(line in holes for line in range(node.lineno, (node.end_lineno or node.lineno) + 1))


def _syntax_problem(exc: SyntaxError, source: str) -> SyntaxProblem:
    lines = source.splitlines()
    line = max((exc.lineno or 1) - 1, 0)
    text = lines[line] if line < len(lines) else ""
    # SyntaxError.offset is a 1-based str index of the line (CPython decodes the line before reporting)
    start = utf16_column(text, max((exc.offset or 1) - 1, 0))
    end = start + 1
    if exc.end_lineno == exc.lineno and exc.end_offset and exc.end_offset > (exc.offset or 0):
        end = utf16_column(text, exc.end_offset - 1)
    return SyntaxProblem(exc.msg or "invalid syntax", Range(line, start, line, max(end, start)))


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Subscript):
        return _dotted(node.value)
    return ""


def _class_info(
    node: ast.ClassDef, lines: Lines, defined: Mapping[str, ast.ClassDef], holes: frozenset[int] = frozenset()
) -> ClassInfo:
    explicit: str | None = None
    explicit_range: Range | None = None
    abstract = False
    nested: dict[str, tuple[Field, ...] | None] = {}
    hooks: set[str] = set()
    problems: list[tuple[str, Range]] = []
    is_async = False
    for item in node.body:
        target, value = _assignment(item)
        if target == "name" and isinstance(value, ast.Constant) and isinstance(value.value, str):
            explicit, explicit_range = value.value, lines.string_inside(value)
        elif target == "abstract" and isinstance(value, ast.Constant):
            abstract = bool(value.value)
        elif isinstance(item, ast.ClassDef) and item.name in DECLARATIONS:
            nested[item.name] = None if _holed(item, holes) else _fields(item, defined)
        elif target in DECLARATIONS and value is not None:  # Input = OrderIn: a model defined elsewhere
            model = defined.get(_dotted(value)) if isinstance(value, ast.Name) else None
            nested[str(target)] = None if model is None or _holed(model, holes) else _fields(model, defined)
        elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name in HOOKS:
            hooks.add(item.name)
            is_async = is_async or (item.name == "handle" and isinstance(item, ast.AsyncFunctionDef))
            if problem := _hook_problem(item):
                problems.append((problem, Range(*_def_name_range(item, lines))))
    line = lines.text(node.lineno - 1)
    start = line.find(node.name, str_index(line, lines.column(node.lineno, node.col_offset)))
    start = max(start, 0)
    name_range = Range(
        node.lineno - 1, utf16_column(line, start), node.lineno - 1, utf16_column(line, start + len(node.name))
    )
    return ClassInfo(
        name=node.name,
        range=name_range,
        bases=tuple(_dotted(base) for base in node.bases),
        doc=ast.get_docstring(node) or "",
        explicit_name=explicit,
        explicit_name_range=explicit_range,
        abstract=abstract,
        input=nested.get("Input"),
        output=nested.get("Output"),
        hooks=frozenset(hooks),
        hook_problems=tuple(problems),
        is_async=is_async,
        declares=frozenset(nested),
        unparsed=_holed(node, holes),
    )


def _def_name_range(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: Lines) -> tuple[int, int, int, int]:
    line = lines.text(node.lineno - 1)
    start = line.find(node.name, str_index(line, lines.column(node.lineno, node.col_offset)))
    start = max(start, 0)
    return node.lineno - 1, utf16_column(line, start), node.lineno - 1, utf16_column(line, start + len(node.name))


def _assignment(item: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
        return item.targets[0].id, item.value
    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
        return item.target.id, item.value
    return None, None


def _fields(
    node: ast.ClassDef, defined: Mapping[str, ast.ClassDef], seen: frozenset[str] = frozenset()
) -> tuple[Field, ...] | None:
    """The fields of a plain class or a pydantic model, its bases' first; ``None`` when a base is not in the file."""
    out: dict[str, Field] = {}
    for base in node.bases:
        name = _dotted(base)
        if name.rsplit(".", 1)[-1] in _FIELDLESS_BASES:
            continue
        parent = defined.get(name)
        inherited = _fields(parent, defined, seen | {node.name}) if parent and name not in seen else None
        if inherited is None:
            return None
        out.update((f.name, f) for f in inherited)
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and (f := _field(item)):
            out[f.name] = f
    return tuple(out.values())


DECLARATIONS = ("Input", "Output")
_FIELDLESS_BASES = frozenset({"BaseModel", "object", "Generic"})
_FIELD_CALLS = frozenset({"Field", "pydantic.Field"})


def _field(item: ast.AnnAssign) -> Field | None:
    """One annotated line of a declaration: plain (a default makes a field optional) or pydantic's ``Field(...)``."""
    name = item.target.id if isinstance(item.target, ast.Name) else ""
    annotation, metadata = _annotated(item.annotation)
    if name.startswith("_") or name == "model_config" or _dotted(annotation).rsplit(".", 1)[-1] == "ClassVar":
        return None
    required, default = item.value is None, None if item.value is None else ast.unparse(item.value)
    value = _field_call(item.value)
    if value is not None:
        required, default = _field_default(value)
    alias = next((a for call in (*map(_field_call, metadata), value) if call and (a := _alias(call))), None)
    return Field(alias or name, _type_label(annotation), required, default)


def _field_call(node: ast.expr | None) -> ast.Call | None:
    return node if isinstance(node, ast.Call) and _dotted(node.func) in _FIELD_CALLS else None


def _annotated(annotation: ast.expr) -> tuple[ast.expr, list[ast.expr]]:
    """``Annotated[T, m1, m2]`` -> ``(T, [m1, m2])``; anything else -> ``(annotation, [])``."""
    if (
        isinstance(annotation, ast.Subscript)
        and _dotted(annotation.value).rsplit(".", 1)[-1] == "Annotated"
        and isinstance(annotation.slice, ast.Tuple)
        and annotation.slice.elts
    ):
        first, *rest = annotation.slice.elts
        return first, rest
    return annotation, []


def _alias(call: ast.Call) -> str | None:
    for keyword in call.keywords:
        value = keyword.value
        if keyword.arg in ("alias", "validation_alias") and isinstance(value, ast.Constant):
            return value.value if isinstance(value.value, str) else None
    return None


def _field_default(call: ast.Call) -> tuple[bool, str | None]:
    """Whether ``Field(...)`` leaves its field required, and the default it gives as text."""
    given = call.args[0] if call.args else None
    for keyword in call.keywords:
        if keyword.arg == "default":
            given = keyword.value
        elif keyword.arg == "default_factory":
            return False, f"{ast.unparse(keyword.value)}()"
    if given is None or (isinstance(given, ast.Constant) and given.value is Ellipsis):
        return True, None
    return False, ast.unparse(given)


def _type_label(annotation: ast.expr) -> str:
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return annotation.value
    return ast.unparse(annotation)


def _hook_problem(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The same rule as ``splice.server.core.store.check_handle_signature``: only ``self`` may be required."""
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    names = [a.arg for a in positional]
    if args.vararg:
        names.append("*" + args.vararg.arg)
    names += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        names.append("**" + args.kwarg.arg)
    if any(isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod") for d in node.decorator_list):
        return f"{node.name}() must be a plain method taking only self"
    without_default = len(positional) - len(args.defaults)
    required = positional[1:without_default] if positional else []
    required_kw = [a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    if (not positional and not args.vararg) or required or required_kw:
        return f"{node.name}() must take only self, it takes ({', '.join(names)})"
    return None


def _invoke_call(node: ast.AST, lines: Lines) -> InvokeCall | None:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    if node.func.attr not in INVOKE_METHODS or not node.args:
        return None
    first = node.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    payload: ast.expr | None = node.args[1] if len(node.args) > 1 else None
    for keyword in node.keywords:
        if keyword.arg == "payload":
            payload = keyword.value
    keys: tuple[PayloadKey, ...] | None = None
    if isinstance(payload, ast.Dict) and all(
        isinstance(k, ast.Constant) and isinstance(k.value, str) for k in payload.keys
    ):
        keys = tuple(
            PayloadKey(k.value, lines.string_inside(k))
            for k in payload.keys
            if isinstance(k, ast.Constant) and isinstance(k.value, str)
        )
    return InvokeCall(node.func.attr, first.value, lines.string_inside(first), keys)


def _is_service_base(base: str) -> bool:
    return base == "Service" or base.endswith(".Service")


class WorkspaceIndex:
    """Every indexed file, updated one file at a time; services are resolved across files on demand."""

    def __init__(self) -> None:
        self._modules: dict[str, ModuleIndex] = {}
        self._services: dict[str, list[ServiceDef]] | None = None

    def update(self, path: str, source: str) -> ModuleIndex:
        index = parse_module(path, source)
        self._modules[path] = index
        self._services = None
        return index

    def remove(self, path: str) -> None:
        if self._modules.pop(path, None) is not None:
            self._services = None

    def get(self, path: str) -> ModuleIndex | None:
        return self._modules.get(path)

    def modules(self) -> Iterable[ModuleIndex]:
        return self._modules.values()

    def __len__(self) -> int:
        return len(self._modules)

    def services(self) -> dict[str, list[ServiceDef]]:
        """Service name -> its definitions (more than one is a duplicate)."""
        if self._services is None:
            self._services = resolve_services(self._modules.values())
        return self._services

    def invokes_of(self, name: str) -> Iterator[tuple[str, InvokeCall]]:
        for module in self._modules.values():
            for call in module.invokes:
                if call.service == name:
                    yield module.path, call


def resolve_services(modules: Iterable[ModuleIndex]) -> dict[str, list[ServiceDef]]:
    """Which classes are services (inheritance followed by class name across files) and their names."""
    resolver = _Resolver(modules)
    out: dict[str, list[ServiceDef]] = {}
    for module, cls in resolver.entries:
        if module.module is None or cls.abstract or not resolver.is_service(cls):
            continue
        chain = resolver.ancestors(cls)
        inputs = next((c.input for c in chain if "Input" in c.declares), None)
        outputs = next((c.output for c in chain if "Output" in c.declares), None)
        has_handle = any("handle" in c.hooks for c in chain)
        name = service_name(module.module, cls.name, cls.explicit_name)
        out.setdefault(name, []).append(ServiceDef(name, module.path, module.module, cls, inputs, outputs, has_handle))
    return out


class _Resolver:
    def __init__(self, modules: Iterable[ModuleIndex]) -> None:
        self.entries = [(module, cls) for module in modules for cls in module.classes]
        self.by_name: dict[str, list[ClassInfo]] = {}
        for _, cls in self.entries:
            self.by_name.setdefault(cls.name, []).append(cls)

    def parents(self, cls: ClassInfo) -> Iterator[ClassInfo]:
        for base in cls.bases:
            yield from self.by_name.get(base.rsplit(".", 1)[-1], [])

    def ancestors(self, cls: ClassInfo) -> list[ClassInfo]:
        """``cls`` and the workspace classes it inherits from, nearest first."""
        chain, seen = [cls], {id(cls)}
        for current in chain:
            for parent in self.parents(current):
                if id(parent) not in seen:
                    seen.add(id(parent))
                    chain.append(parent)
        return chain

    def is_service(self, cls: ClassInfo) -> bool:
        return any(_is_service_base(base) for c in self.ancestors(cls) for base in c.bases)


__all__ = [
    "ClassInfo",
    "Field",
    "InvokeCall",
    "ModuleIndex",
    "OutgoingUse",
    "PayloadKey",
    "Range",
    "ServiceDef",
    "SyntaxProblem",
    "WorkspaceIndex",
    "parse_module",
    "resolve_services",
    "str_index",
    "utf16_column",
]
