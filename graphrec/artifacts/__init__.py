"""The artifacts graphrec writes for others to read: the trained model and the exported embeddings.

Each is a directory with a ``manifest.json`` (format, version, sha256 of every file),
written atomically and verified on load (docs/DESIGN.md, "Artifacts"); the graph
artifact is kg's (:mod:`kg.graph_io`).

* :mod:`~graphrec.artifacts.model`: the model artifact (``graphrec.model``), written by
  ``graphrec.train``, read by serving, ``graphrec.evaluate`` and ``graphrec.export``.
  It lives here rather than in :mod:`graphrec.serving` because it is the hand-off
  between training and every reader, serving being only one of them.
* :mod:`~graphrec.artifacts.embeddings`: the embeddings export (``graphrec.embeddings``),
  written by ``graphrec.export`` for systems without graphrec.
"""
