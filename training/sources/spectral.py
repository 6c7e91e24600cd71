"""The maths of the graph-filter source (training/sources/graphfilter.py), apart from its learner.

The normalised matrix, its truncated SVD, the ideal filter's rank rule, ChebyCF's
Chebyshev coefficients, the many-settings scorer that shares the powers of ``P~``
(:func:`filter_settings`, behind ``GraphFilter.score_settings``) and the small
tensor helpers. The learner (state, fit, scoring, persistence) stays in
``training.sources.graphfilter``, which re-exports the public names here.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from eval.checks import choice, number, positive_int
from eval.progress import progress_bar
from training.base import as_user_items, to_torch_csr

COLUMN_BLOCK = 64
"""Users per cache-sized block in the CPU filter (:func:`filter_columns`)."""
PASS_BLOCK = 16
"""Columns per sparse pass over ``R~`` in :func:`filter_columns` (16 beat 8, 32 and 64 on gowalla, one thread)."""
KINDS = ("linear", "chebyshev")
"""The filter families (``GraphFilter(kind=...)``)."""

__all__ = [
    "auto_rank", "chebyshev_coefficients", "check_settings", "filter_columns", "filter_settings", "normalised_matrix",
    "randomized_svd", "cpu_operators", "top_entries",
]  # fmt: skip


def normalised_matrix(user_items: sp.csr_matrix, exponent: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """``R~ = D_U^-e R D_I^-e`` and the item scale ``d_I^-e`` (0 for items nobody has).

    Args:
        user_items: float32 CSR ``[num_users, num_items]``.
        exponent: ``e``; 0 leaves ``R`` as it is.

    Returns:
        ``(R~ as float32 CSR, item_scale float64 [num_items])``.
    """
    user_degree = np.asarray(user_items.sum(axis=1), dtype=np.float64).ravel()
    item_degree = np.asarray(user_items.sum(axis=0), dtype=np.float64).ravel()
    user_scale = np.zeros_like(user_degree)
    item_scale = np.zeros_like(item_degree)
    np.power(user_degree, -exponent, out=user_scale, where=user_degree > 0)
    np.power(item_degree, -exponent, out=item_scale, where=item_degree > 0)
    normalised = sp.diags(user_scale) @ user_items.astype(np.float64) @ sp.diags(item_scale)
    return sp.csr_matrix(normalised, dtype=np.float32), item_scale


def randomized_svd(
    matrix: sp.csr_matrix, rank: int, *, seed: int, oversample: int = 64, power_iterations: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``rank`` singular values and right singular vectors of a sparse matrix.

    Halko, Martinsson and Tropp's randomized range finder with power iterations
    (each re-orthonormalised by QR), run on the item side: ``Q`` spans
    ``(A^T A)^q A^T G`` for a seeded Gaussian ``G``. Only sparse x dense products
    and orthonormalisation of ``[num_items, rank + oversample]`` blocks are needed
    (ARPACK's ``svds`` took minutes for rank 256 on Gowalla).

    Args:
        matrix: CSR ``[m, n]``.
        rank: ``k``, at most ``min(m, n)``.
        seed: seeds ``G``.
        oversample: extra columns of the sketch.
        power_iterations: ``q``; more sharpens the tail of the spectrum.

    Returns:
        ``(values float32 [k] descending, vectors float32 [n, k])``.
    """
    left = matrix.astype(np.float64).tocsr()
    right = left.T.tocsr()
    width = min(rank + oversample, min(left.shape))
    sketch = np.random.default_rng(seed).standard_normal((left.shape[0], width))
    basis = _orthonormal(right @ sketch)
    for _ in range(power_iterations):
        basis = _orthonormal(right @ _orthonormal(left @ basis))
    # (A Q)^T (A Q) = W S^2 W^T  =>  A ~ U S (Q W)^T; a [width, width] eigenproblem.
    projected = torch.from_numpy(left @ basis)
    squares, small = torch.linalg.eigh(projected.T @ projected)
    values = squares.flip(0).clamp_min(0).sqrt().numpy()
    vectors = basis @ small.flip(1)[:, :rank].numpy()
    return values[:rank].astype(np.float32), np.ascontiguousarray(vectors, dtype=np.float32)


def _orthonormal(block: np.ndarray) -> np.ndarray:
    """An orthonormal basis of a tall block's columns: CholeskyQR2, QR where it fails.

    Two Cholesky passes cost two small Gram products; LAPACK's Householder QR of
    a ``[40k, 320]`` block was 5-40x slower on a shared 2-core machine.
    """
    basis = torch.from_numpy(block)
    try:
        for _ in range(2):
            factor = torch.linalg.cholesky(basis.T @ basis)
            basis = torch.linalg.solve_triangular(factor, basis.T, upper=False).T
    except torch.linalg.LinAlgError:
        basis, _ = torch.linalg.qr(torch.from_numpy(block))
    return basis.contiguous().numpy()


def auto_rank(num_items: int) -> int:
    """``rank="auto"``: ``num_items / 80`` within [16, 512].

    A rule read off the validation searches of ``bench/graphfilter.py``: a small
    dense catalogue wants few singular vectors (ml-100k, 1,682 items: 16-32), a
    large sparse one many (Gowalla, 41k items: 512 beat 256 in every filter family;
    BSPM used 448, ChebyCF 512).
    """
    return int(min(512, max(16, num_items // 80)))


def chebyshev_coefficients(order: int, flatness: float) -> np.ndarray:
    """Chebyshev interpolation coefficients of ChebyCF's plateau response.

    The target on ``x`` in [-1, 1] (``x = 1 - 2 l`` for an eigenvalue ``l`` of ``P~``)
    is ``f(x) = 1/2 - 1/2 sign(x) |x|^flatness``: 1 at the top of the spectrum
    (``l = 1``), 0 at its bottom, flat around the middle for ``flatness > 1``. It is
    interpolated at the ``order + 1`` Chebyshev nodes ``x_j = cos(pi (j + 1/2) / (order + 1))``
    (the discrete orthogonality of ``T_k`` at those nodes gives the coefficients).

    Returns:
        float64 ``[order + 1]``: ``f(x) ~ sum_k c_k T_k(x)``.
    """
    nodes = np.cos(np.pi * (np.arange(order + 1) + 0.5) / (order + 1))
    target = 0.5 - 0.5 * np.sign(nodes) * np.abs(nodes) ** flatness
    basis = np.polynomial.chebyshev.chebvander(nodes, order)  # [nodes, k]: T_k(x_j)
    coefficients = basis.T @ target * (2.0 / (order + 1))
    coefficients[0] /= 2.0
    return coefficients


def check_settings(
    *,
    alpha,
    rank,
    exponent,
    sharpen,
    sharpen_order,
    kind,
    order,
    flatness,
    degree_power,
    ideal_exponent,
    dense_max_items,
    seed,
    neighbors=0,
) -> None:
    """Raise ValueError naming the first ``GraphFilter`` hyper-parameter out of range."""
    checked = (("dense_max_items", dense_max_items, 0, None), ("seed", seed, 0, None),
               ("neighbors", neighbors, 0, None), ("sharpen_order", sharpen_order, 1, 8),
               ("order", order, 1, 64))  # fmt: skip
    if rank != "auto":
        checked += (("rank", rank, 0, None),)
    for arg, value, low, high in checked:
        positive_int(value, arg, minimum=low, maximum=high)
    for arg, value in (("alpha", alpha), ("sharpen", sharpen)):
        number(value, arg, low=0.0)
    number(flatness, "flatness", low=0.0, low_open=True, reason=" (1: the linear response)")
    for arg, value in (("exponent", exponent), ("degree_power", degree_power), ("ideal_exponent", ideal_exponent)):
        if value is None and arg == "ideal_exponent":
            continue
        number(value, arg, low=0.0, high=1.0, reason=" (1/2: symmetric normalisation)")
    choice(kind, "kind", KINDS)


def filter_columns(
    rows: sp.csr_matrix, *, normalised: sp.csr_matrix, transposed: sp.csr_matrix, pre: sp.spmatrix | None,
    post: np.ndarray | None, left: np.ndarray | None, right: np.ndarray | None, alpha: float, sharpen: float,
    sharpen_order: int, operators: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:  # fmt: skip
    """``GraphFilter._filter`` of the linear kind on CPU, computed on transposed ``[num_items, b]`` blocks.

    The same terms in the same order as the row form, laid out for the cache: users
    go through in blocks of :data:`COLUMN_BLOCK`, each kept as C-ordered columns, so
    every power of ``P~`` is ``R~^T (R~ X)`` streamed row by row over an ``X`` that
    stays in the last-level cache (gowalla, 41k items, one thread: 0.56 ms per user and
    power with blocks of 64 against 0.92 ms with 256). The first pass ``r R~^T`` is
    sparse on the user's row, and the ideal term multiplies the sparse rows (not a
    dense copy) by ``V``. Scores equal the row form's up to float rounding.

    On one torch thread (the serving workers' setting) the sparse passes over ``R~`` run
    on :data:`PASS_BLOCK` columns at a time with torch's CSR product (``operators``, from
    :func:`cpu_operators`); with more threads scipy's, over the whole block. A column of a
    sparse-dense product is the same sum whatever the other columns, so the scores are
    scipy's up to float rounding: bit for bit on AMD EPYC, where both sum in row order;
    MKL's kernel on Intel Xeon orders the terms differently (2e-7 apart on the test graph).
    Gowalla's default filter, one thread: 3.2 against 5.2 ms per user
    (bench/results/hybrid_topk_gowalla.md).

    Args:
        rows: CSR ``[B, n]`` of the users' rows.
        normalised, transposed: ``R~`` (CSR ``[num_users, n]``) and ``R~^T`` as CSR.
        pre, post: the degree scalings (sparse diagonal ``[n, n]`` and ``[n]``), or ``None``.
        left, right: the ideal term's factors ``[n, k]`` and ``[k, n]``, or ``None`` without it.
        alpha, sharpen, sharpen_order: as ``GraphFilter`` takes them.
        operators: ``cpu_operators(normalised, transposed)`` when the caller keeps them
            (built here otherwise).
    """
    if torch.get_num_threads() == 1:
        r, rt = operators if operators is not None else cpu_operators(normalised, transposed)
        width = PASS_BLOCK
    else:  # torch's OpenMP split of a 16-column product is slower than scipy's one thread (gowalla: 16 vs 7 ms/user)
        r, rt, width = normalised, transposed, COLUMN_BLOCK
    out = np.empty(rows.shape, dtype=np.float32)
    right_columns = right.T if right is not None else None  # [n, k]
    for start in range(0, rows.shape[0], COLUMN_BLOCK):
        part = rows[start : start + COLUMN_BLOCK]
        scaled = part @ pre if pre is not None else part
        users = np.asarray((scaled @ transposed).T.toarray(), dtype=np.float32)  # r R~^T: [num_users, b]
        ideal = None
        if left is not None:
            ideal = alpha * (right_columns @ np.asarray(part @ left, dtype=np.float32).T)  # [n, b]
        for first in range(0, part.shape[0], width):
            columns = slice(first, first + width)
            block = _product(rt, np.ascontiguousarray(users[:, columns]))  # r P~: [n, b']
            if post is not None:
                block *= post[:, None]
            if ideal is not None:
                block += ideal[:, columns]
            if sharpen:
                term = block
                for step in range(1, sharpen_order + 1):  # sum_j (-t P~)^j / j!, as in the row form
                    term = _product(rt, _product(r, term))
                    term *= np.float32(-sharpen / step)
                    block += term
            out[start + first : start + first + block.shape[1]] = block.T
    return torch.from_numpy(out)


def top_entries(
    filter_rows: Callable[[sp.csr_matrix], torch.Tensor], num_items: int, keep: int, *, show_progress: bool = False
) -> sp.csr_matrix:
    """The filter's ``[n, n]`` operator with only each row's ``keep`` largest-magnitude entries.

    The filter is linear in the user's row, so its operator's row ``i`` is the filter
    applied to the one-hot row of item ``i``: blocks of the identity go through
    ``filter_rows`` (torch set to one thread, one block per thread on as many threads as
    torch had), and each row keeps its ``keep`` entries of largest absolute value (the
    best ``keep``-term approximation of the row). The filtered rows are bit-for-bit the
    same on any thread count (see :func:`filter_columns`), and so is the selection.

    Args:
        filter_rows: the filter applied to a CSR batch of rows, ``[B, n]`` float32.
        num_items: ``n``.
        keep: entries kept per row, ``1 <= keep``; at ``keep >= n`` every entry stays.
        show_progress: a progress bar over the items (the build takes minutes on large catalogues).

    Returns:
        float32 CSR ``[n, n]`` with sorted column indices.
    """
    keep = min(int(keep), num_items)
    block = max(16, min(256, 2**22 // max(1, num_items)))  # about 16 MiB of filtered rows per call
    identity = sp.identity(num_items, dtype=np.float32, format="csr")
    indices = np.empty((num_items, keep), dtype=np.int32)
    values = np.empty((num_items, keep), dtype=np.float32)

    def run(start: int) -> int:
        rows = filter_rows(identity[start : start + block]).cpu().numpy()  # CUDA filters too
        if keep < num_items:
            chosen = np.argpartition(-np.abs(rows), keep - 1, axis=1)[:, :keep]
            chosen.sort(axis=1)
        else:
            chosen = np.broadcast_to(np.arange(num_items), rows.shape)
        indices[start : start + len(rows)] = chosen
        values[start : start + len(rows)] = np.take_along_axis(rows, chosen, axis=1)
        return start

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool, progress_bar(
            desc="graphfilter operator", total=num_items, unit="item", disable=not show_progress
        ) as bar:
            for start in pool.map(run, range(0, num_items, block)):
                bar.update(min(block, num_items - start))
    finally:
        torch.set_num_threads(threads)
    indptr = np.arange(0, num_items * keep + 1, keep, dtype=np.int64)
    return sp.csr_matrix((values.ravel(), indices.ravel(), indptr), shape=(num_items, num_items))


def _product(matrix: torch.Tensor | sp.csr_matrix, dense: np.ndarray) -> np.ndarray:
    """``matrix @ dense`` for a torch CSR tensor or a scipy CSR matrix (the same sums, up to their order)."""
    if isinstance(matrix, torch.Tensor):
        return torch.sparse.mm(matrix, torch.from_numpy(dense)).numpy()
    return matrix @ dense


def cpu_operators(normalised: sp.csr_matrix, transposed: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    """``R~`` and ``R~^T`` as CPU torch CSR tensors for :func:`filter_columns` (int32 indices where they fit)."""
    cpu = torch.device("cpu")
    return to_torch_csr(normalised, cpu, compact=True), to_torch_csr(transposed, cpu, compact=True)


def filter_settings(model, rows: sp.csr_matrix, settings: Sequence[Mapping[str, Any]]) -> Iterator[torch.Tensor]:
    """:meth:`training.sources.graphfilter.GraphFilter.score_settings` (its docstring says what and why)."""
    model._check_fitted()
    rows = as_user_items(rows, num_items=model.user_items_.shape[1])
    config = model.get_config()
    learners = []
    for setting in settings:
        unknown = sorted(set(setting) - set(config))
        if unknown or any(setting.get(k, config[k]) != config[k] for k in ("exponent", "seed")):
            raise ValueError(f"score_settings: {dict(setting)} changes {unknown or 'exponent/seed'}")
        learner = type(model)(**{**config, **setting})
        if learner._effective_rank(model.user_items_.shape) > model.vectors_.shape[1]:
            kept = model.vectors_.shape[1]
            raise ValueError(f"rank={learner.rank} needs more singular vectors than this fit kept ({kept})")
        learners.append(learner)
    device = torch.device(model.device)
    degree = np.asarray(model.user_items_.sum(axis=0), dtype=np.float64).ravel()
    dense = _dense_rows(rows, device)
    memo: dict[tuple, torch.Tensor] = {}

    def scales(power: float) -> tuple[torch.Tensor, torch.Tensor]:
        if ("d", power) not in memo:
            pre, post = _degree_scales(degree, power)
            memo["d", power] = torch.from_numpy(pre.astype(np.float32)).to(device)
            memo["D", power] = torch.from_numpy(post.astype(np.float32)).to(device)
        return memo["d", power], memo["D", power]

    def cached(key: tuple, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in memo:
            memo[key] = make()
        return memo[key]

    def signal(power: float) -> torch.Tensor:  # r D^-b
        return cached(("x", power), lambda: dense * scales(power)[0] if power else dense)

    def linear(power: float, j: int) -> torch.Tensor:  # ((r D^-b P~) D^b) P~^j
        if j == 0:
            return cached(
                ("lin", power, 0), lambda: model._propagate(signal(power)) * (scales(power)[1] if power else 1.0)
            )
        return cached(("lin", power, j), lambda: model._propagate(linear(power, j - 1)))

    def chebyshev(power: float, k: int) -> torch.Tensor:  # T_k(I - 2 P~) applied to r D^-b
        if k == 0:
            return signal(power)
        if k == 1:
            return cached(("T", power, 1), lambda: signal(power) - 2.0 * model._propagate(signal(power)))
        return cached(("T", power, k), lambda: 2.0 * (chebyshev(power, k - 1) - 2.0 * model._propagate(
            chebyshev(power, k - 1))) - chebyshev(power, k - 2))  # fmt: skip

    def ideal(rank: int, power: float, j: int) -> torch.Tensor:  # (r D^-c V V^T D^c) P~^j
        if j == 0:

            def make() -> torch.Tensor:
                pre, post = scales(power)
                vectors = torch.from_numpy(model.vectors_[:, :rank]).to(device)
                return ((dense * pre) @ vectors) @ (vectors.T * post)

            return cached(("ideal", rank, power, 0), make)
        return cached(("ideal", rank, power, j), lambda: model._propagate(ideal(rank, power, j - 1)))

    for learner in learners:
        power = learner.degree_power
        steps = learner.sharpen_order if learner.sharpen else 0
        weights = [(-learner.sharpen) ** j / math.factorial(j) for j in range(steps + 1)]
        rank = learner._effective_rank(model.user_items_.shape)
        ideal_power = learner.exponent if learner.ideal_exponent is None else learner.ideal_exponent
        if learner.kind == "linear":
            scores = sum(w * linear(power, j) for j, w in enumerate(weights))
            if rank:
                scores = scores + learner.alpha * sum(w * ideal(rank, ideal_power, j) for j, w in enumerate(weights))
            yield scores
            continue
        coefficients = chebyshev_coefficients(learner.order, learner.flatness)
        scores = sum(float(c) * chebyshev(power, k) for k, c in enumerate(coefficients))
        if power:
            scores = scores * scales(power)[1]
        if rank:
            scores = scores + learner.alpha * ideal(rank, ideal_power, 0)
        term = scores
        for j in range(1, steps + 1):  # sharpening a Chebyshev output: no shared powers
            term = model._propagate(term) * (-learner.sharpen / j)
            scores = scores + term
        yield scores


def _degree_scales(degree: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray]:
    """``(d^-power, d^power)`` per item, both 0 for items nobody has."""
    scale = np.zeros_like(degree)
    np.power(degree, -power, out=scale, where=degree > 0)
    inverse = np.zeros_like(degree)
    np.power(degree, power, out=inverse, where=degree > 0)
    return scale, inverse


def _dense_rows(rows: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """A CSR batch as a dense float32 tensor on ``device``."""
    if device.type == "cpu":
        return torch.from_numpy(rows.toarray().astype(np.float32, copy=False))
    coo = rows.tocoo()
    dense = torch.zeros(rows.shape, dtype=torch.float32, device=device)
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)).to(device)
    dense[index[0], index[1]] = torch.from_numpy(coo.data.astype(np.float32)).to(device)
    return dense
