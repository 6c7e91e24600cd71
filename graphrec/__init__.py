"""graphrec: a graph-based hybrid recommender engine.

The public face: the Python API, the ``python -m graphrec.<verb>`` entry points,
the model artifact, serving, export and the embedded demo data.
"""

__version__ = "0.1.0"
