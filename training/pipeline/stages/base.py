"""The :class:`Stage` type: one step of ``graphrec.train`` with its name, inputs, outputs and checkpoint.

A stage is a function of the run's :class:`~training.pipeline.context.StageContext`, declared
with :func:`stage`; its name is the function's name (what users type in ``--stages``).
:class:`~training.pipeline.runner.Pipeline` iterates :data:`training.pipeline.stages.ALL_STAGES`
in order and does the checkpoint bookkeeping once for all of them
(:class:`~training.pipeline.workdir.WorkDir`: begin, done, timings, "restored from"); a stage
itself only finds, in the work directory, what an earlier run of it kept (its ``checkpoint``)
and fits the rest.

The artefacts that ``needs`` and ``makes`` name are the graph's splits (:data:`GRAPH_INPUTS`),
the sources by :class:`~training.sources.names.Source` name, and the pipeline's own products
(:data:`ITEM_TEXT`, :data:`ENTITY_TEXT`, :data:`RANKER`, :data:`EVALUATION`).
tests/training/test_pipeline_stages.py checks that every need is a graph split or made by an
earlier stage, and that every file a run leaves in its work directory is some stage's checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from training.sources.names import Source

if TYPE_CHECKING:
    from training.pipeline.context import StageContext

__all__ = [
    "ENTITY_TEXT", "EVALUATION", "GRAPH_INPUTS", "ITEM_TEXT", "RANKER", "TEST", "TRAIN", "VALID", "Stage", "phased",
    "stage",
]  # fmt: skip

TRAIN, VALID, TEST = "train", "valid", "test"
GRAPH_INPUTS = (TRAIN, VALID, TEST)
"""The graph's interaction splits (side tables, text and the knowledge graph come with the graph too)."""
ITEM_TEXT = "item text vectors"
ENTITY_TEXT = "entity text vectors"
RANKER = "hybrid ranker"
EVALUATION = "evaluation.json"


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline.

    Attributes:
        name: what ``--stages`` calls it (the function's name).
        run: ``run(ctx)``: fit, or restore from the work directory, what the stage makes.
        needs: the artefacts it reads when they are there (graph splits, sources, text vectors...).
        makes: the artefacts it adds to the run.
        sources: the sources it fits (a source stage; empty for the others).
        checkpoint: what it keeps in the work directory, relative paths (files or folders).
        doc: one line on what it does (the function's docstring's first line).
    """

    name: str
    run: Callable[["StageContext"], None]
    needs: tuple[str, ...]
    makes: tuple[str, ...]
    sources: tuple[Source, ...]
    checkpoint: tuple[str, ...]
    doc: str

    def __call__(self, ctx: "StageContext") -> None:
        self.run(ctx)


def stage(
    *,
    needs: tuple[str, ...],
    makes: tuple[str, ...],
    checkpoint: tuple[str, ...],
    sources: tuple[Source, ...] = (),
) -> Callable[[Callable[["StageContext"], None]], Stage]:
    """Declare a stage: ``@stage(needs=..., makes=..., checkpoint=...)`` over ``def <name>(ctx): ...``."""

    def declare(run: Callable[["StageContext"], None]) -> Stage:
        doc = (run.__doc__ or "").strip().splitlines()
        return Stage(
            name=run.__name__, run=run, needs=tuple(needs), makes=tuple(makes), sources=tuple(sources),
            checkpoint=tuple(checkpoint), doc=doc[0] if doc else "",
        )  # fmt: skip

    return declare


def phased(*names: str) -> tuple[str, ...]:
    """The work-directory folders of sources fitted per phase: ``fit/<name>`` and ``final/<name>``."""
    return tuple(f"{phase}/{name}" for name in names for phase in ("fit", "final"))
