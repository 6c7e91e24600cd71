"""Neighbor-sampled mini-batches for graphs too large for full propagation.

Each step propagates over a sub-graph around the batch's users and items only:
starting from those seed nodes, every node discovered within ``num_layers - 1``
hops keeps at most ``num_neighbors`` of its in-edges, drawn uniformly (the
GraphSAGE / torch_geometric ``NeighborLoader`` scheme). An encoder run for
``num_layers`` layers over that sub-graph gives every seed the receptive field
it would have in the full graph, restricted to the sampled edges.

For LightGCN a sampled edge keeps its full-graph normalised weight, scaled by
``degree / sampled`` of its target, so that a layer's sum over the sample is an
unbiased estimate of the full-graph sum. torch_geometric's own loaders need the
optional ``pyg-lib`` or ``torch-sparse`` extensions, which graphrec does not
depend on; this sampler is a few vectorised torch operations over the CSR rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from training.gnn.adjacency import GraphView

__all__ = ["NeighborSampler", "SampledGraph"]


@dataclass(frozen=True)
class SampledGraph:
    """A sampled sub-graph around seed nodes.

    Attributes:
        nodes: int64 ``[n]`` global ids of the sub-graph's nodes; the seeds come
            first, in the order given.
        view: the sub-graph with local node ids (what the encoder propagates over).
    """

    nodes: torch.Tensor
    view: GraphView


class NeighborSampler:
    """Uniform in-neighbor sampling over a CSR adjacency (row = target node).

    Args:
        adjacency: ``[N, N]`` CSR; ``data`` holds each edge's propagation
            weight (the normalised weight for LightGCN, ones for the GAT).
        edge_type: int64 ``[nnz]`` relation of each stored entry, or ``None``.
        num_neighbors: in-edges kept per expanded node and layer.
        num_layers: layers of the encoder (hops the sub-graph must cover).
        weighted: build the weighted sparse adjacency of the sub-graph (LightGCN);
            otherwise ``edge_index``/``edge_type`` (GAT).
        device: where the sub-graph tensors go.
    """

    def __init__(
        self,
        adjacency: sp.csr_matrix,
        *,
        edge_type: np.ndarray | None,
        num_neighbors: int,
        num_layers: int,
        weighted: bool,
        device: torch.device,
    ) -> None:
        self.indptr = torch.from_numpy(adjacency.indptr.astype(np.int64))
        self.indices = torch.from_numpy(adjacency.indices.astype(np.int64))
        self.weights = torch.from_numpy(adjacency.data.astype(np.float32))
        self.edge_type = None if edge_type is None else torch.from_numpy(np.asarray(edge_type, np.int64))
        self.num_neighbors = num_neighbors
        self.num_layers = num_layers
        self.weighted = weighted
        self.device = device
        # Global -> local id map, reset after each sample (cheaper than allocating per batch).
        self._local = torch.full((adjacency.shape[0],), -1, dtype=torch.int64)

    def _sample_edges(self, frontier: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions (into ``indices``) of the in-edges kept for ``frontier`` and their scale."""
        starts = self.indptr[frontier]
        degree = self.indptr[frontier + 1] - starts
        small = degree <= self.num_neighbors
        # Nodes with few edges keep them all.
        lengths = degree[small]
        row_starts = torch.cumsum(lengths, 0) - lengths
        offsets = torch.arange(int(lengths.sum())) - torch.repeat_interleave(row_starts, lengths)
        kept = [torch.repeat_interleave(starts[small], lengths) + offsets]
        scale = [torch.ones(len(kept[0]))]
        big = (~small).nonzero().squeeze(1)
        if len(big):
            draws = torch.rand(len(big), self.num_neighbors, generator=generator)
            picks = (starts[big].unsqueeze(1) + (draws * degree[big].unsqueeze(1)).long()).flatten()
            # Draws with replacement, de-duplicated: a uniform subset given its size,
            # so degree / distinct keeps the layer sum unbiased.
            picks = torch.unique(picks)
            owner = torch.searchsorted(self.indptr, picks, right=True) - 1
            _, inverse, distinct = torch.unique(owner, return_inverse=True, return_counts=True)
            owner_degree = (self.indptr[owner + 1] - self.indptr[owner]).float()
            kept.append(picks)
            scale.append(owner_degree / distinct[inverse].float())
        return torch.cat(kept), torch.cat(scale)

    def sample(self, seeds: torch.Tensor, generator: torch.Generator) -> SampledGraph:
        """Sample the sub-graph that ``num_layers`` layers need around ``seeds``.

        Args:
            seeds: distinct int64 global node ids (CPU).
            generator: the seeded CPU generator.

        Returns:
            The :class:`SampledGraph`; its tensors live on the sampler's device.
        """
        local = self._local
        nodes = [seeds]
        local[seeds] = torch.arange(len(seeds))
        count = len(seeds)
        frontier = seeds
        targets, positions, scales = [], [], []
        for _ in range(self.num_layers):
            if not len(frontier):
                break
            kept, scale = self._sample_edges(frontier, generator)
            owners = torch.searchsorted(self.indptr, kept, right=True) - 1
            sources = self.indices[kept]
            targets.append(owners)
            positions.append(kept)
            scales.append(scale)
            fresh = torch.unique(sources[local[sources] < 0])
            local[fresh] = torch.arange(count, count + len(fresh))
            count += len(fresh)
            nodes.append(fresh)
            frontier = fresh
        all_nodes = torch.cat(nodes)
        kept = torch.cat(positions)
        dst = local[torch.cat(targets)]
        src = local[self.indices[kept]]
        local[all_nodes] = -1
        if self.weighted:
            values = self.weights[kept] * torch.cat(scales)
            adjacency = torch.sparse_coo_tensor(
                torch.stack([dst, src]), values, (count, count), check_invariants=False
            ).coalesce().to_sparse_csr()
            view = GraphView(num_nodes=count, adjacency=adjacency.to(self.device), symmetric=False)
        else:
            edge_type = None if self.edge_type is None else self.edge_type[kept].to(self.device)
            view = GraphView(num_nodes=count, edge_index=torch.stack([src, dst]).to(self.device), edge_type=edge_type)
        return SampledGraph(nodes=all_nodes.to(self.device), view=view)
