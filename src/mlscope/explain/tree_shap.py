"""Exact interventional Shapley values of a tree ensemble's raw output, over groups of columns.

A player is a group of the estimator's input columns (one raw feature: a number is one column, a
one-hot encoded category several). For an explained row x and a background row b, the hybrid row
takes the columns of the groups in a coalition S from x and the rest from b; the value of S is the
ensemble's output on the hybrid, averaged over the background rows.

The output is a sum of leaves, so the game is a sum of one small game per (tree, leaf, x, b). Along the
path to a leaf, call a group x-true if x satisfies every split of that group's columns on the path,
b-true likewise. The hybrid reaches the leaf iff every group on the path is x-true and in S, or b-true
and out of S. With A the groups x-true but not b-true, C the groups b-true but not x-true (and no
group neither), the leaf is reached exactly when A is inside S and C outside; the Shapley value of
that unanimity-style game is v (a-1)! c! / (a+c)! for each group of A and -v a! (c-1)! / (a+c)! for each
group of C, zero for the rest (a = |A|, c = |C|).

No leaf is enumerated: for each (x, b, tree) a depth-first walk from the root carries each group's
state (undecided, in A, in C). A decided group follows its own side; an undecided one where x and b
agree follows them; where they disagree the walk forks, the group joining A on x's side and C on b's.
Every leaf it reaches is one with a non-zero game, so the work per pair is the part of the tree
some hybrid of x and b can reach. Which way every background row goes at every node is computed once
per explainer; background rows that go the same way at every node of a tree are walked once, weighted.
The walks are compiled by numba and spread over the explained rows (or over the trees for few rows)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numba
import numpy as np

from mlscope.explain.tree_models import TreeEnsemble


@dataclass
class Prepared:
    """Everything about the ensemble and the background that no explained row changes."""

    ensemble: TreeEnsemble
    node_group: np.ndarray  # int64 (nodes,): group of the node's column, -1 at leaves
    n_groups: int
    background_left: np.ndarray  # uint8 (background rows, nodes): the row goes left at the node
    tree_rows: np.ndarray  # int64: per tree, the distinct background rows, concatenated
    tree_weights: np.ndarray  # float64: weight of each of those rows (copies / background size)
    tree_offsets: np.ndarray  # int64 (trees + 1,): slice of tree_rows per tree
    weight_a: np.ndarray  # float64 (d+1, d+1): (a-1)! c! / (a+c)!
    weight_c: np.ndarray  # float64 (d+1, d+1): a! (c-1)! / (a+c)!
    max_depth: int
    base: np.ndarray  # float64 (outputs,): mean raw output over the background


def prepare(ensemble: TreeEnsemble, groups: np.ndarray, background: np.ndarray) -> Prepared:
    """Precompute for `background` (the estimator's input matrix); `groups[j]` is column j's player."""
    groups = np.asarray(groups, dtype=np.int64)
    if len(groups) != ensemble.n_columns:
        raise ValueError(f"{len(groups)} column groups for a model of {ensemble.n_columns} columns")
    inner = ensemble.left >= 0
    node_group = np.where(inner, groups[np.where(inner, ensemble.feature, 0)], -1).astype(np.int64)
    B = ensemble.prepare(background)
    background_left = _go_left(ensemble, B)
    depth = _max_depth(ensemble)
    rows, weights, offsets = _distinct_background(ensemble, background_left)
    weight_a, weight_c = _weights(depth)
    base = ensemble.predict_raw(B).mean(axis=0) if len(B) else ensemble.base.copy()
    return Prepared(ensemble, node_group, int(groups.max()) + 1 if len(groups) else 0, background_left,
                    rows, weights, offsets, weight_a, weight_c, depth, base)


def shapley_values(prepared: Prepared, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values (rows, groups, outputs), raw outputs (rows, outputs)): interventional Shapley values of
    the raw output for each row of X, and that output (the ensemble's, computed in the same walk)."""
    e = prepared.ensemble
    X = np.ascontiguousarray(e.prepare(X))
    n, K, G = len(X), e.n_outputs, prepared.n_groups
    if n == 0 or e.n_trees == 0:
        return np.zeros((n, G, K)), np.tile(e.base, (n, 1))
    kernel = _kernel()
    threads = _threads()
    chunks = 1 if n >= 2 * threads else min(threads, e.n_trees)
    bounds = np.linspace(0, e.n_trees, chunks + 1).astype(np.int64)
    out = np.zeros((chunks, n, G + 1, K))  # slot G: the sum of the leaves x reaches
    kernel(e.roots, e.left, e.right, e.feature, e.threshold, e.missing_left.astype(np.uint8),
           np.ascontiguousarray(e.value), prepared.node_group, prepared.background_left, prepared.tree_rows,
           prepared.tree_weights, prepared.tree_offsets, prepared.weight_a, prepared.weight_c,
           prepared.max_depth, G, bounds, X, out)
    total = out.sum(axis=0)
    return total[:, :G], total[:, G] + e.base


def _go_left(ensemble: TreeEnsemble, X: np.ndarray) -> np.ndarray:
    inner = ensemble.left >= 0
    columns = X[:, np.where(inner, ensemble.feature, 0)]
    with np.errstate(invalid="ignore"):
        left = np.where(np.isnan(columns), ensemble.missing_left[None, :], columns <= ensemble.threshold[None, :])
    return np.ascontiguousarray((left & inner[None, :]).astype(np.uint8))


def _max_depth(ensemble: TreeEnsemble) -> int:
    depth = np.zeros(len(ensemble.left), dtype=np.int64)
    frontier = ensemble.roots
    level = 0
    while len(frontier):
        depth[frontier] = level
        inner = frontier[ensemble.left[frontier] >= 0]
        frontier = np.concatenate([ensemble.left[inner], ensemble.right[inner]])
        level += 1
    return max(level - 1, 0)


def _distinct_background(ensemble: TreeEnsemble, background_left: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tree, one background row per distinct vector of go-left answers at that tree's nodes."""
    size = len(background_left)
    ends = np.append(ensemble.roots[1:], len(ensemble.left))
    rows, weights, offsets = [], [], [0]
    for start, end in zip(ensemble.roots, ends, strict=True):
        if size:
            block = np.packbits(background_left[:, start:end], axis=1)
            _, first, counts = np.unique(block, axis=0, return_index=True, return_counts=True)
        else:
            first, counts = np.zeros(0, dtype=np.int64), np.zeros(0)
        rows.append(first.astype(np.int64))
        weights.append(counts / max(size, 1))
        offsets.append(offsets[-1] + len(first))
    return (np.concatenate(rows).astype(np.int64), np.concatenate(weights).astype(np.float64),
            np.array(offsets, dtype=np.int64))


def _weights(depth: int) -> tuple[np.ndarray, np.ndarray]:
    d = depth + 1
    weight_a, weight_c = np.zeros((d, d)), np.zeros((d, d))
    for a in range(d):
        for c in range(d):
            if a + c == 0 or a + c > depth:
                continue
            total = math.factorial(a + c)
            if a:
                weight_a[a, c] = math.factorial(a - 1) * math.factorial(c) / total
            if c:
                weight_c[a, c] = math.factorial(a) * math.factorial(c - 1) / total
    return weight_a, weight_c


def _threads() -> int:
    return int(numba.get_num_threads())


def _walks(roots, left, right, feature, threshold, missing_left, value, node_group, background_left,  # noqa: ANN001, ANN202
           tree_rows, tree_weights, tree_offsets, weight_a, weight_c, max_depth, n_groups, bounds, X, out):
    n = X.shape[0]
    chunks = bounds.shape[0] - 1
    K = value.shape[1]
    for job in numba.prange(n * chunks):
        i = job // chunks
        chunk = job % chunks
        x = X[i]
        phi = out[chunk, i]
        state = np.zeros(n_groups, np.int8)  # 0 undecided, 1 in A (x's side), 2 in C (b's side)
        in_a = np.empty(max_depth + 1, np.int64)
        in_c = np.empty(max_depth + 1, np.int64)
        stack_node = np.empty(max_depth + 2, np.int64)
        stack_a = np.empty(max_depth + 2, np.int64)
        stack_c = np.empty(max_depth + 2, np.int64)
        stack_group = np.empty(max_depth + 2, np.int64)
        for t in range(bounds[chunk], bounds[chunk + 1]):
            root = roots[t]
            node = root
            while left[node] >= 0:
                v = x[feature[node]]
                x_goes_left = missing_left[node] != 0 if np.isnan(v) else v <= threshold[node]
                node = left[node] if x_goes_left else right[node]
            for k in range(K):
                phi[n_groups, k] += value[node, k]
            for r in range(tree_offsets[t], tree_offsets[t + 1]):
                b = tree_rows[r]
                weight = tree_weights[r]
                b_left = background_left[b]
                a = 0
                c = 0
                stack_node[0] = root
                stack_a[0] = 0
                stack_c[0] = 0
                stack_group[0] = -1
                top = 1
                while top > 0:
                    top -= 1
                    node = stack_node[top]
                    while a > stack_a[top]:
                        a -= 1
                        state[in_a[a]] = 0
                    while c > stack_c[top]:
                        c -= 1
                        state[in_c[c]] = 0
                    g = stack_group[top]
                    if g >= 0:  # the b side of a fork: g joins C
                        state[g] = 2
                        in_c[c] = g
                        c += 1
                    while left[node] >= 0:
                        g = node_group[node]
                        v = x[feature[node]]
                        x_goes_left = missing_left[node] != 0 if np.isnan(v) else v <= threshold[node]
                        s = state[g]
                        if s == 1:
                            node = left[node] if x_goes_left else right[node]
                        elif s == 2:
                            node = left[node] if b_left[node] != 0 else right[node]
                        elif x_goes_left == (b_left[node] != 0):
                            node = left[node] if x_goes_left else right[node]
                        else:
                            stack_node[top] = right[node] if x_goes_left else left[node]
                            stack_a[top] = a
                            stack_c[top] = c
                            stack_group[top] = g
                            top += 1
                            state[g] = 1
                            in_a[a] = g
                            a += 1
                            node = left[node] if x_goes_left else right[node]
                    if a + c == 0:
                        continue
                    if a:
                        w = weight * weight_a[a, c]
                        for j in range(a):
                            for k in range(K):
                                phi[in_a[j], k] += w * value[node, k]
                    if c:
                        w = weight * weight_c[a, c]
                        for j in range(c):
                            for k in range(K):
                                phi[in_c[j], k] -= w * value[node, k]
                # leave the state clean for the next background row
                while a > 0:
                    a -= 1
                    state[in_a[a]] = 0
                while c > 0:
                    c -= 1
                    state[in_c[c]] = 0


@cache
def _kernel() -> Callable[..., None]:
    try:
        return numba.njit(parallel=True, nogil=True, cache=True)(_walks)
    except RuntimeError:  # no writable cache directory
        return numba.njit(parallel=True, nogil=True)(_walks)
