"""Reading a study spec from data or a YAML/JSON file, with errors that name the field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from studies.errors import FieldError, SpecError
from studies.spec._study import StudySpec

_EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"

# Model-level validators start their message with the field they blame ("lr_low: …"),
# since pydantic reports them at the model's own location.
_BLAMED_FIELD = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*): (.+)$", re.DOTALL)


def field_error_at(loc: tuple[int | str, ...] | list[str], message: str) -> FieldError:
    """The FieldError of a pydantic error at *loc*, blamed on the field its message names."""
    parts = [str(part) for part in loc]
    blamed = _BLAMED_FIELD.match(message)
    if blamed:
        name, message = blamed.groups()
        if name.split(".")[0] != (parts[-1] if parts else None):
            parts.extend(name.split("."))
    return FieldError(".".join(parts) or "spec", message)


def parse_spec(data: Any) -> StudySpec:
    """Validate *data* (a mapping) as a study spec; raise SpecError naming each bad field."""
    if not isinstance(data, dict):
        raise SpecError([FieldError("spec", f"expected a mapping, got {type(data).__name__}")])
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            message = str(err["msg"]).removeprefix("Value error, ")
            given = err.get("input")
            if err["type"] == "extra_forbidden":
                message = "unknown field (docs/architecture.md lists the spec's fields)"
            elif (
                err["type"] != "missing"
                and "got " not in message
                and not isinstance(given, dict | list)
            ):
                message = f"{message}, got {given!r}"
            errors.append(field_error_at(err["loc"], message))
        raise SpecError(errors) from exc


def load_spec_file(path: Path) -> StudySpec:
    """Read a YAML or JSON study file; SpecError names the field (or the file) and the reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([FieldError("file", f"cannot read {path}: {exc.strerror}")]) from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError([FieldError("file", f"{path.name} is not valid YAML/JSON: {exc}")]) from exc
    return parse_spec(data)


def default_grid_spec_path() -> Path:
    """The default study: the seed's five learning rates on digits (what `sweepdoc demo` runs)."""
    return _EXAMPLES_DIR / "digits-lr-grid.yaml"


def example_spec_paths() -> list[Path]:
    """Every example study file shipped in studies/examples/."""
    return sorted(p for p in _EXAMPLES_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
