"""TOML task files in, typed and fully validated specs out, or a SpecError listing every problem."""

from __future__ import annotations

import hashlib
import math
import os
import stat
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import rfc8785
from pydantic import BaseModel, ValidationError

from chronoseal._decode import DocumentRefused, detail, loads_toml
from chronoseal.errors import ConfigError, SpecError, SpecProblem

from ._model import Component, MeasurementPin, TaskSpec
from ._validate import INSTALLED, validate

M = TypeVar("M", bound=BaseModel)

#: Resolves ``value = "installed"`` (simulated TEE only) to the running code's measurement.
MeasurementResolver = Callable[[Component, str], bytes]


def _location(loc: tuple[int | str, ...], raw: Mapping[str, Any]) -> str:
    out = ""
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            name = ""
            if isinstance(node, list) and 0 <= part < len(node):
                node = node[part]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    name = f" ({node['name']})"
                elif isinstance(node, dict) and isinstance(node.get("org"), str):
                    name = f" ({node['org']})"
            out += f"[{part}]{name}"
        else:
            node = node.get(part) if isinstance(node, dict) else None
            out += f".{part}" if out else part
    return out or "(document)"


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming every invalid field of a config file, for ConfigError messages."""
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
    )


#: Canonical JSON (RFC 8785) carries numbers as IEEE doubles: beyond this an integer changes.
MAX_SAFE_INTEGER = 2**53 - 1
#: No task, party or scenario file needs more; a larger one is refused before it is parsed.
MAX_FILE_BYTES = 1 << 20


def read_config_text(path: Path, what: str) -> str:
    """A small UTF-8 config file, or a refusal naming why; never more than MAX_FILE_BYTES."""
    # Non-blocking, so a FIFO or device in place of a file is refused, not waited on.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SpecError(
                f"{path} is not a regular file: not a {what}", id="spec.file.not_regular"
            )
        os.set_blocking(fd, True)
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        message = f"{path} is larger than {MAX_FILE_BYTES} bytes: not a {what}"
        raise SpecError(message, id="spec.file.too_large")
    return data.decode("utf-8")


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    """A file's TOML document, read and decoded within the bounded decoder's size and depth;
    a ``DocumentRefused`` or ``TOMLDecodeError`` (both ``ValueError``) if it is not."""
    return loads_toml(read_config_text(path, what), max_bytes=MAX_FILE_BYTES, what=f"{what} {path}")


def read_config(path: Path, what: str, model: type[M], *, invalid_id: str) -> M:
    """The config file ``path`` (a ``what``: "party config", "scenario") read, decoded within
    the bounded decoder's size and depth, and validated as ``model``. Every way it can fail is
    a :class:`ConfigError` naming the file: ``config.file.missing``, ``config.file.too_large``,
    ``config.file.invalid``, or ``invalid_id`` for a document that is not a ``model``."""
    try:
        return model.model_validate(_read_toml(path, what))
    except FileNotFoundError:
        raise ConfigError(f"no {what} at {path}", id="config.file.missing") from None
    except SpecError as exc:
        too_large = exc.id == "spec.file.too_large"
        raise ConfigError(
            exc.message, id="config.file.too_large" if too_large else "config.file.invalid"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, DocumentRefused) as exc:
        raise ConfigError(
            f"cannot read {what} {path}: {detail(exc)}", id="config.file.invalid"
        ) from None
    except ValidationError as exc:
        raise ConfigError(
            f"{what} {path} is invalid: {describe_validation_error(exc)}", id=invalid_id
        ) from None


def _unrepresentable(node: Any, loc: tuple[int | str, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Locations of values canonical JSON cannot carry: huge integers, NaN, infinities."""
    if isinstance(node, bool):
        return
    if isinstance(node, int) and abs(node) > MAX_SAFE_INTEGER:
        yield loc
    elif isinstance(node, float) and not math.isfinite(node):
        yield loc
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _unrepresentable(value, (*loc, str(key)))
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _unrepresentable(value, (*loc, i))


def parse_spec(raw: Mapping[str, Any]) -> TaskSpec:
    """Validate a decoded document; raise :class:`SpecError` with every problem found.

    Whatever is valid here can be hashed: values canonical JSON cannot carry (integers beyond
    2**53 - 1, NaN, infinities) are problems, so ``spec check`` and ``spec hash`` agree.
    """
    unsafe = [
        SpecProblem(_location(loc, raw), "not representable in canonical JSON (RFC 8785)")
        for loc in _unrepresentable(raw)
    ]
    if unsafe:
        raise SpecError(f"the task spec has {len(unsafe)} problem(s)", problems=unsafe)
    try:
        spec = TaskSpec.model_validate(dict(raw))
    except ValidationError as exc:
        problems = [
            SpecProblem(_location(tuple(e["loc"]), raw), e["msg"])
            for e in exc.errors(include_url=False)
        ]
        raise SpecError(
            f"the task spec has {len(problems)} problem(s)", problems=problems
        ) from None
    problems = validate(spec)
    if problems:
        raise SpecError(f"the task spec has {len(problems)} problem(s)", problems=problems)
    return spec


def load_spec(path: str | Path) -> TaskSpec:
    """Read and validate a TOML task file."""
    p = Path(path)
    try:
        raw = _read_toml(p, "task spec")
    except FileNotFoundError:
        raise SpecError(f"no task file at {p}", id="spec.file.missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {p}: {exc}", id="spec.file.unreadable") from None
    except (tomllib.TOMLDecodeError, DocumentRefused) as exc:
        raise SpecError(
            f"{p} is not valid TOML",
            id="spec.toml.invalid",
            problems=[SpecProblem("(document)", detail(exc))],
        ) from None
    return parse_spec(raw)


def resolve_measurements(spec: TaskSpec, resolver: MeasurementResolver) -> TaskSpec:
    """Replace ``installed`` pins by the resolved digest, so the task id pins concrete code."""
    pins = {}
    for comp, pin in spec.measurements.pins().items():
        if pin.value == INSTALLED:
            pins[comp.value] = MeasurementPin(tee=pin.tee, value=resolver(comp, pin.tee).hex())
        else:
            pins[comp.value] = pin
    return spec.model_copy(update={"measurements": spec.measurements.model_copy(update=pins)})


def canonical_json(spec: TaskSpec) -> bytes:
    """RFC 8785 canonical JSON of the resolved spec: the bytes every party hashes alike."""
    unresolved = [c.value for c, p in spec.measurements.pins().items() if p.value == INSTALLED]
    if unresolved:
        raise SpecError(
            "resolve the 'installed' measurements before hashing the spec",
            id="spec.measurement.unresolved",
            problems=[
                SpecProblem(f"measurements.{c}.value", "still 'installed'") for c in unresolved
            ],
        )
    doc = spec.model_dump(mode="json")
    if doc["task"].get("crypto") == "standard":
        del doc["task"]["crypto"]
    if doc["measurements"].get("analysis_worker", False) is None:
        del doc["measurements"]["analysis_worker"]  # a task without workers hashes as before
    for pin in doc["measurements"].values():
        pin["value"] = pin["value"].lower().removeprefix("0x")
    return rfc8785.dumps(doc)


def task_id(spec: TaskSpec) -> bytes:
    """SHA-256 of the canonical spec: the task's identity on chain."""
    return hashlib.sha256(canonical_json(spec)).digest()
