"""The training configuration: typed, frozen dataclasses, one section per stage.

A YAML or TOML file maps onto :class:`TrainConfig`::

    seed: 2026
    als: {factors: 128, regularization: 30.0, iterations: 30}
    gnn: {model: lightgcn, epochs: 200}
    ranker: {candidates_per_source: 100}

Every field has a default and a one-line doc (``field(metadata={"doc": ...})``;
:func:`describe` prints them). Precedence: defaults, then the file, then
``--set section.field=value`` overrides (:meth:`TrainConfig.with_overrides`).
Unknown sections or fields are errors that name the known ones. The resolved
configuration is saved into the model artifact (:meth:`TrainConfig.to_dict`).

Sections whose fields mirror a learner's ``__init__`` are turned into that learner by
:mod:`training.pipeline.learners`, every argument named, so the learner validates the values
it owns; :meth:`Section.learner_kwargs` lists those fields (pipeline-only ones such as
``enabled`` or ``weighted`` left out) for the tests that check them against the learners.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

import yaml

from eval.checks import positive_int
from kg.config import read_config_file
from training.pipeline.config_sections import (
    SECTIONS,
    ALSConfig,
    EASEConfig,
    EvalConfig,
    GNNConfig,
    GraphFilterConfig,
    ItemKNNConfig,
    RankerConfig,
    TextConfig,
    TuneConfig,
    _doc,
    _plain,
)

__all__ = [
    "ALSConfig",
    "EASEConfig",
    "EvalConfig",
    "GNNConfig",
    "GraphFilterConfig",
    "ItemKNNConfig",
    "RankerConfig",
    "STAGES",
    "TextConfig",
    "TrainConfig",
    "TuneConfig",
    "check_user_sample",
    "describe",
    "parse_override",
]

STAGES = ("text", "als", "neighbors", "gnn", "ranker", "evaluate")
"""Pipeline stages in run order (``neighbors`` fits item-KNN, the graph filter and EASE)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``python -m graphrec.train`` needs besides the graph and the output directory."""

    seed: int = _doc("seeds every learner, the ranker and all sampling", 2026)
    device: str = _doc("auto (CUDA when present), cpu or cuda[:n]", "auto")
    user_sample: Union[int, float] = _doc(
        "fit every source, the GNN and the ranker on a seeded sample of users: a fraction in (0, 1) or a count; "
        "the others are folded in from their rows when served and evaluated (0: every user; docs/SCALE.md)", 0,
    )  # fmt: skip
    text: TextConfig = field(default_factory=TextConfig)
    als: ALSConfig = field(default_factory=ALSConfig)
    itemknn: ItemKNNConfig = field(default_factory=ItemKNNConfig)
    ease: EASEConfig = field(default_factory=EASEConfig)
    graphfilter: GraphFilterConfig = field(default_factory=GraphFilterConfig)
    gnn: GNNConfig = field(default_factory=GNNConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)

    def __post_init__(self) -> None:
        positive_int(self.seed, "seed", minimum=0)
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu") or self.device.startswith("cuda")
        ):
            raise ValueError(f"device must be auto, cpu or cuda[:n], got {self.device!r}")
        if self.gnn.model not in ("lightgcn", "gat"):
            raise ValueError(f"gnn.model must be lightgcn or gat, got {self.gnn.model!r}")
        check_user_sample(self.user_sample)

    def weighted(self, source: str) -> bool:
        """Whether source ``source`` is fitted on interaction weights: its section's ``weighted``, else true."""
        return bool(getattr(getattr(self, source, None), "weighted", True))

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Build from a nested mapping ``{"seed": .., "als": {...}, ...}``; unknown keys are errors."""
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name in SECTIONS:
                if not isinstance(value, Mapping):
                    raise ValueError(f"section {key!r} must be a mapping of settings, got {value!r}")
                kwargs[name] = SECTIONS[name].from_dict(value, section=name)
            elif name in _TOP_LEVEL:
                kwargs[name] = value
            else:
                known = [*_TOP_LEVEL, *SECTIONS]
                raise ValueError(f"unknown setting {key!r}; known: {', '.join(known)}")
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str) -> "TrainConfig":
        """Load a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file (errors name the file)."""
        values = read_config_file(path)
        try:
            return cls.from_dict(values)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{path}: {exc}") from None

    def with_overrides(self, overrides: Sequence[str]) -> "TrainConfig":
        """Apply ``section.field=value`` (or ``seed=..``, ``device=..``, ``user_sample=..``) strings.

        Values parse as YAML scalars.
        """
        values = self.to_dict()
        for text in overrides:
            path, value = parse_override(text)
            if len(path) == 1:
                values[path[0]] = value
            else:
                section, name = path
                if section not in SECTIONS:
                    raise ValueError(f"--set {text!r}: unknown section {section!r}; known: {', '.join(SECTIONS)}")
                if name in SECTIONS[section].RENAMED:  # replaces the new name's value, under the old name
                    values[section].pop(SECTIONS[section].RENAMED[name], None)
                values[section][name] = value
        return TrainConfig.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        """A nested JSON-serialisable mapping; ``from_dict(to_dict())`` gives an equal config."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _TOP_LEVEL}
        for name in SECTIONS:
            out[name] = getattr(self, name).to_dict()
        return out


_TOP_LEVEL = ("seed", "device", "user_sample")
"""The settings of :class:`TrainConfig` outside any section."""


def check_user_sample(value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is 0, a fraction in (0, 1) or a whole count >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"user_sample must be 0 (off), a fraction in (0, 1) or a user count, got {value!r}")
    if value >= 1 and float(value) != int(value):
        raise ValueError(f"user_sample >= 1 is a count of users and must be whole, got {value!r}")


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """``"als.factors=64"`` -> ``(("als", "factors"), 64)``; the value is parsed as a YAML scalar.

    Raises:
        ValueError: no ``=``, or a key that is not ``name`` or ``section.name``.
    """
    if "=" not in text:
        raise ValueError(f"--set {text!r}: expected section.field=value")
    key, raw = text.split("=", 1)
    path = tuple(part.strip().replace("-", "_") for part in key.split("."))
    if not 1 <= len(path) <= 2 or not all(path):
        raise ValueError(f"--set {text!r}: expected section.field=value (e.g. als.factors=64)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return path, value


def describe() -> str:
    """Every section and field with its default and one-line doc (markdown)."""
    lines = ["| setting | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(TrainConfig):
        if f.name in SECTIONS:
            continue
        lines.append(f"| `{f.name}` | `{f.default}` | {f.metadata['doc']} |")
    for name, section in SECTIONS.items():
        for f in dataclasses.fields(section):
            lines.append(f"| `{name}.{f.name}` | `{_plain(f.default)}` | {f.metadata['doc']} |")
    return "\n".join(lines)
