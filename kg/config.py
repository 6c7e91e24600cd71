"""The build configuration: one frozen dataclass, loadable from YAML or TOML.

Every field has a default and a one-line doc (``field(metadata={"doc": ...})``);
the CLI generates its flags from these fields, so the file keys and the flag
names are the same words (``k_core`` / ``--k-core``). Precedence is defaults,
then the config file, then flags given on the command line.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import os
import sys
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published as tomli (a dependency there, see setup.cfg)
    import tomli as tomllib

__all__ = ["FORMATS", "SPLITS", "BuildConfig", "PATH_FIELDS", "coerce_field", "read_config_file", "settings_from"]

FORMATS = ("auto", "csv", "tsv", "parquet", "jsonl", "recbole", "lightgcn")
SPLITS = ("auto", "given", "random", "temporal")
PATH_FIELDS = ("interactions", "test", "items", "users", "kg", "link", "social")


def _doc(text: str, default: Any = None, *, factory: Any = None) -> Any:
    if factory is not None:
        return field(default_factory=factory, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class BuildConfig:
    """How to turn logs and side tables into a graph artifact.

    ``None`` on a column or column-role field means "detect it"; what was
    detected is reported in the manifest and the CLI summary. Explicit values
    always win over detection.

    Raises:
        TypeError: a field has the wrong type (naming the field and the value).
        ValueError: a field has an unusable value (naming the field and the value).
    """

    # -- inputs --------------------------------------------------------------------------
    interactions: str | None = _doc("interaction log (CSV/TSV, Parquet, JSONL, RecBole .inter, LightGCN txt)")
    format: str = _doc(f"format of the interaction log: one of {', '.join(FORMATS)}", "auto")
    test: str | None = _doc("test interactions in the same format as the log; gives the split")
    items: str | None = _doc("item table: item id, then text and attribute columns")
    users: str | None = _doc("user table: user id, then attribute columns")
    kg: str | None = _doc("knowledge-graph triples: head, relation, tail")
    link: str | None = _doc("item -> KG entity links: item id, entity id")
    social: str | None = _doc("user-user (friend/trust) edges: user id, user id")
    header: bool | None = _doc("delimited files have a header line (None: detect)")
    columns: tuple[str, ...] | None = _doc("column names of a headerless log, e.g. user,item,weight")
    delimiter: str | None = _doc("field delimiter of delimited files (None: detect)")
    encoding: str = _doc("text encoding of delimited and JSONL files", "utf-8")
    # -- interaction columns -------------------------------------------------------------
    user_column: str | None = _doc("log column holding user ids (None: detect)")
    item_column: str | None = _doc("log column holding item ids (None: detect)")
    timestamp_column: str | None = _doc("log column holding unix-second or ISO-8601 timestamps (None: detect)")
    event_column: str | None = _doc("log column holding the event type (None: detect)")
    weight_column: str | None = _doc("log column holding a numeric per-event weight (None: detect)")
    event_weights: Mapping[str, float] = _doc(
        "weight per event type, e.g. {view: 1, purchase: 5}; empty: every event weighs 1", factory=dict
    )
    # -- side-table column roles ------------------------------------------------------------
    item_id_column: str | None = _doc("item-table column holding item ids (None: detect)")
    user_id_column: str | None = _doc("user-table column holding user ids (None: detect)")
    item_text_columns: tuple[str, ...] | None = _doc("item columns that are free text (None: detect)")
    item_categorical_columns: tuple[str, ...] | None = _doc("item columns whose values become entities (None: detect)")
    item_multi_columns: tuple[str, ...] | None = _doc("item columns holding several values each (None: detect)")
    item_numeric_columns: tuple[str, ...] | None = _doc("item columns bucketed into quantile entities (None: detect)")
    user_text_columns: tuple[str, ...] | None = _doc("user columns that are free text (None: detect)")
    user_categorical_columns: tuple[str, ...] | None = _doc("user columns whose values become entities (None: detect)")
    user_multi_columns: tuple[str, ...] | None = _doc("user columns holding several values each (None: detect)")
    user_numeric_columns: tuple[str, ...] | None = _doc("user columns bucketed into quantile entities (None: detect)")
    multi_separator: str | None = _doc("separator of multi-valued cells (None: detect; RecBole token_seq: space)")
    numeric_buckets: int = _doc("quantile buckets per numeric attribute column", 5)
    text_min_length: int = _doc("mean length in characters from which a string column counts as text", 30)
    # -- split ---------------------------------------------------------------------------
    split: str = _doc(f"split method: one of {', '.join(SPLITS)} (auto: given with --test, else random)", "auto")
    seed: int = _doc("seed of the random split (validation uses seed + 1)", 2026)
    train_fraction: float = _doc("share of each user's pairs kept out of test (random, temporal)", 0.8)
    valid_fraction: float = _doc("share of each user's train pairs carved out as validation (0: none)", 0.2)
    # -- filters -------------------------------------------------------------------------
    min_user_count: int = _doc("drop users with fewer distinct items (0: keep all)", 0)
    min_item_count: int = _doc("drop items with fewer distinct users (0: keep all)", 0)
    k_core: int = _doc("iteratively keep users and items with at least k pairs (0: off)", 0)
    # -- behaviour -----------------------------------------------------------------------
    lenient: bool = _doc("skip bad rows and report them per reason instead of failing", False)
    max_examples: int = _doc("example rows kept per file and rejection reason", 3)
    batch_rows: int = _doc("rows per streamed batch when reading large logs", 1_000_000)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, coerce_field(f.name, value, hints[f.name]))
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.split == "given" and self.test is None:
            raise ValueError("split 'given' needs a test file (test / --test)")
        if self.test is not None and self.split in ("random", "temporal"):
            raise ValueError(f"a test file gives the split; split {self.split!r} conflicts with test={self.test!r}")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")
        for name in ("min_user_count", "min_item_count", "k_core", "max_examples"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("numeric_buckets", "batch_rows", "text_min_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {self.delimiter!r}")
        weights = {}
        for event, weight in self.event_weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
                raise ValueError(f"event_weights[{event!r}] must be a number >= 0, got {weight!r}")
            weights[str(event)] = float(weight)
        object.__setattr__(self, "event_weights", types.MappingProxyType(weights))

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, base_dir: str | os.PathLike | None = None) -> "BuildConfig":
        """Build from a mapping of field names (dashes accepted for underscores).

        Args:
            values: field values; unknown keys are an error, not ignored.
            base_dir: relative input paths are resolved against this directory.

        Raises:
            ValueError: an unknown key (naming it and listing the known ones), or a bad value.
            TypeError: a value of the wrong type.
        """
        fields = (f.name for f in dataclasses.fields(cls))
        clean = settings_from(values, fields, label=lambda key: f"build setting {key!r}")
        if base_dir is not None:
            for name in PATH_FIELDS:
                value = clean.get(name)
                if isinstance(value, str) and not Path(value).is_absolute():
                    clean[name] = os.fspath(Path(base_dir) / value)
        return cls(**clean)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "BuildConfig":
        """Load from a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file.

        Relative input paths in the file are taken relative to the file's directory.

        Raises:
            ValueError: unreadable file, unknown extension, not a mapping, unknown keys.
        """
        path = Path(path)
        values = read_config_file(path)
        try:
            return cls.from_dict(values, base_dir=path.parent)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{path}: {exc}") from None

    def replace(self, **changes: Any) -> "BuildConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable field values (tuples as lists, the event-weight mapping as a dict)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @property
    def split_method(self) -> str:
        """The split actually used: ``auto`` resolved to ``given`` or ``random``."""
        if self.split != "auto":
            return self.split
        return "given" if self.test is not None else "random"


def settings_from(
    values: Mapping[str, Any],
    fields: Iterable[str],
    *,
    label: Callable[[str], str],
    renamed: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Map a mapping of settings onto field names; the one key check of every config loader.

    Dashes in keys become underscores (``k-core`` is ``k_core``). A key in ``renamed``
    (an old name) stands for its new name, with a ``FutureWarning`` that names both,
    so files written before a rename still load.

    Args:
        values: the settings as written (a file's mapping, a section of one).
        fields: the field names the settings may have.
        label: how a message names a key, e.g. ``lambda key: f"setting text.{key}"``.
        renamed: old name -> new name of settings that were renamed.

    Returns:
        ``{field name: value}``.

    Raises:
        ValueError: an unknown key (naming it and listing the known ones), or an old
            name given together with its new one.
    """
    known, renamed = set(fields), dict(renamed or {})
    clean: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name in renamed:
            new = renamed[name]
            if any(str(other).replace("-", "_") == new for other in values):
                raise ValueError(f"{label(key)} is the old name of {label(new)}; give only the new one")
            message = f"{label(key)} was renamed to {label(new)}; the old name will stop working"
            warnings.warn(message, FutureWarning, stacklevel=3)
            name = new
        if name not in known:
            raise ValueError(f"unknown {label(key)}; known: {', '.join(sorted(known))}")
        clean[name] = value
    return clean


def coerce_field(name: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field's annotation; lists become tuples, paths strings."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if value is None:
        if optional:
            return None
        raise TypeError(f"{name} must not be None")
    base = next((a for a in args if a is not type(None)), hint) if args and optional else hint
    origin = typing.get_origin(base)
    if origin is tuple:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{name} must be a list of column names, got {value!r}")
        return tuple(value)
    if isinstance(origin, type) and issubclass(origin, collections.abc.Mapping):
        if not isinstance(value, Mapping):
            raise TypeError(f"{name} must be a mapping, got {value!r}")
        return value
    if base is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {value!r}")
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {value!r}")
        return float(value)
    return value


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file into a mapping.

    Raises:
        ValueError: unreadable file, unknown extension, invalid syntax, or not a mapping
            (the message names the file).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            values = yaml.safe_load(text)
        elif path.suffix == ".toml":
            values = tomllib.loads(text)
        else:
            raise ValueError(f"{path}: config files must end in .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not valid {path.suffix[1:].upper()} ({exc})") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of settings, found {type(values).__name__}")
    return values
