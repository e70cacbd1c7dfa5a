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

No leaf is enumerated. For one (x, b, tree) a depth-first walk from the root carries each group's
state (undecided, in A, in C): a decided group follows its own side (x's for A, b's for C); an
undecided one where x and b agree follows them; where they disagree the walk forks, the group joining
A on x's side and C on b's. Every leaf reached has a non-zero game. The background rows are not walked
one by one: one walk per (x, tree) carries the SET of background rows (a bitset) that share the
walk's state, and splits it where they part ways. Rows that agree with each other travel together,
so a node is visited once per distinct state rather than once per background row, and a leaf adds
its value times the set's size. Which background rows go left at every node is a bitset computed once
per explainer.

Small trees (boosters: at most MAX_TABLE_TREE_LEAVES leaves) go further: for a leaf with few groups on
its path the background is folded into per-leaf tables when the explainer is built (`LeafTables`),
so an explained row costs a few lookups per leaf whatever the background size. Deep forests' trees
are walked: an explained row reaches only a part of their many leaves. Both parts are compiled by
numba and spread over the explained rows (or, for one row of a large model, over the trees)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numba
import numpy as np

from mlscope.explain.tree_models import PROBABILITY, TreeEnsemble


_M1, _M2, _M4, _H01 = (np.uint64(0x5555555555555555), np.uint64(0x3333333333333333),
                       np.uint64(0x0F0F0F0F0F0F0F0F), np.uint64(0x0101010101010101))
_S1, _S2, _S4, _S56 = np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(56)


def _jit(function: Callable[..., object], **options: object) -> Callable[..., object]:
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:  # no writable cache directory
        return numba.njit(**options)(function)


def _bit_count(v):  # noqa: ANN001, ANN202
    v = v - ((v >> _S1) & _M1)
    v = (v & _M2) + ((v >> _S2) & _M2)
    v = (v + (v >> _S4)) & _M4
    return (v * _H01) >> _S56


_popcount = _jit(_bit_count, inline="always")


@dataclass
class LeafTables:
    """Shallow leaves (at most `max_groups` groups on their path) answered by lookup instead of walks.

    For such a leaf with path groups P (numbered 0..p-1 by first appearance from the root, `local`), a
    background row b reaches it in every hybrid that takes from b the groups it satisfies, M_b. For an
    explained row failing the groups U, the pair counts iff U is inside M_b, and then a = p - |M_b|,
    c = |U|. So the background folds into two tables per leaf, indexed by U: `c_table[U]` = mean over
    the b with M_b containing U of (a! (c-1)! / (a+c)!), and `a_table[U, j]` = the mean of
    ((a-1)! c! / (a+c)!) over those b that fail group j. Per explained row a leaf then costs p lookups."""

    local: np.ndarray  # int64 (nodes,): position of the node's group among its path's groups
    leaf_groups: np.ndarray  # int64: each leaf's path groups in `local` order, from leaf_start[leaf]
    leaf_start: np.ndarray  # int64 (nodes,)
    leaf_p: np.ndarray  # int64 (nodes,): number of groups on the leaf's path (-1 at internal nodes)
    shallow_below: np.ndarray  # uint8 (nodes,): the subtree holds a tabled leaf
    deep_below: np.ndarray  # uint8 (nodes,): the subtree holds a leaf left to the walks
    c_start: np.ndarray  # int64 (nodes,): offset of a tabled leaf's c_table
    a_start: np.ndarray  # int64 (nodes,): offset of a tabled leaf's a_table (2^p x p)
    c_table: np.ndarray  # float64
    a_table: np.ndarray  # float64
    max_groups: int


@dataclass
class Prepared:
    """Everything about the ensemble and the background that no explained row changes."""

    ensemble: TreeEnsemble
    node_group: np.ndarray  # int64 (nodes,): group of the node's column, -1 at leaves
    n_groups: int
    background_left: np.ndarray  # uint64 (nodes, words): bit r set when background row r goes left
    everyone: np.ndarray  # uint64 (words,): the bits of all background rows
    background_size: int
    weight_a: np.ndarray  # float64 (d+1, d+1): (a-1)! c! / (a+c)!
    weight_c: np.ndarray  # float64 (d+1, d+1): a! (c-1)! / (a+c)!
    max_depth: int
    base: np.ndarray  # float64 (outputs,): mean raw output over the background
    value: np.ndarray  # float64 (nodes, outputs), contiguous
    leaf_value: np.ndarray  # the output columns the walks explain (all but the last for probabilities)
    tables: LeafTables
    walked_nodes: int  # nodes above a leaf left to the walks


def prepare(ensemble: TreeEnsemble, groups: np.ndarray, background: np.ndarray) -> Prepared:
    """Precompute for `background` (the estimator's input matrix); `groups[j]` is column j's player."""
    groups = np.asarray(groups, dtype=np.int64)
    if len(groups) != ensemble.n_columns:
        raise ValueError(f"{len(groups)} column groups for a model of {ensemble.n_columns} columns")
    B = ensemble.prepare(background)
    if len(B) == 0:
        raise ValueError("the background has no rows")
    inner = ensemble.left >= 0
    node_group = np.where(inner, groups[np.where(inner, ensemble.feature, 0)], -1).astype(np.int64)
    depth = _max_depth(ensemble)
    weight_a, weight_c = _weights(depth)
    value = np.ascontiguousarray(ensemble.value, dtype=np.float64)
    # Every leaf's class probabilities sum to the same constant, so the last class's values are minus the
    # sum of the others' (Shapley values are linear, and a constant has none): one column less to walk.
    derive_last = ensemble.output == PROBABILITY and ensemble.n_outputs >= 2
    leaf_value = np.ascontiguousarray(value[:, :-1]) if derive_last else value
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    go_left = _go_left(ensemble, B)
    tables = _leaf_tables(ensemble, node_group, n_groups, depth, go_left, weight_a, weight_c)
    return Prepared(ensemble, node_group, n_groups, _bits(go_left.T), _bits(np.ones((1, len(B)), dtype=bool))[0],
                    len(B), weight_a, weight_c, depth, ensemble.predict_raw(B).mean(axis=0), value, leaf_value,
                    tables, int(tables.deep_below.sum()))


PARALLEL_WORK = 1_000_000  # rows x walked nodes x background rows below which one thread does it all
TABLE_BYTES = 256 * 2**20  # memory allowed for the shallow leaves' tables
MAX_TABLE_GROUPS = 10
# Tables pay off for boosters' small trees; a deep forest's tree has too many leaves for an explained row
# to look each up (the walk only reaches those some background row leads to), and too large tables.
MAX_TABLE_TREE_LEAVES = 64


def _leaf_tables(ensemble: TreeEnsemble, node_group: np.ndarray, n_groups: int, depth: int, go_left: np.ndarray,
                 weight_a: np.ndarray, weight_c: np.ndarray) -> LeafTables:
    nodes = len(ensemble.left)
    local = np.full(nodes, -1, dtype=np.int64)
    leaf_p = np.full(nodes, -1, dtype=np.int64)
    leaf_start = np.zeros(nodes, dtype=np.int64)
    order = np.empty(nodes, dtype=np.int64)
    tree_of = np.zeros(nodes, dtype=np.int64)
    _paths(ensemble.roots, ensemble.left, ensemble.right, node_group, n_groups, depth, local, leaf_p, leaf_start,
          np.zeros(0, dtype=np.int64), order, tree_of, False)
    leaves = leaf_p >= 0
    leaf_start[leaves] = np.concatenate([[0], np.cumsum(leaf_p[leaves])[:-1]])
    leaf_groups = np.empty(int(leaf_p[leaves].sum()), dtype=np.int64)
    _paths(ensemble.roots, ensemble.left, ensemble.right, node_group, n_groups, depth, local, leaf_p, leaf_start,
          leaf_groups, order, tree_of, True)
    small = np.bincount(tree_of[leaves], minlength=ensemble.n_trees)[tree_of] <= MAX_TABLE_TREE_LEAVES
    p = leaf_p[leaves & small]
    limit = MAX_TABLE_GROUPS
    while limit > 0 and float(np.sum(np.where(p <= limit, 2.0 ** p * (p + 1), 0.0))) * 8 > TABLE_BYTES:
        limit -= 1
    shallow = leaves & small & (leaf_p <= limit)
    sizes = np.where(shallow, 2 ** np.minimum(np.maximum(leaf_p, 0), limit), 0)
    c_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    a_start = np.concatenate([[0], np.cumsum(sizes * np.maximum(leaf_p, 0))[:-1]]).astype(np.int64)
    shallow_below = shallow.astype(np.uint8)
    deep_below = (leaves & ~shallow).astype(np.uint8)
    _below(ensemble.left, ensemble.right, order, shallow_below, deep_below)
    c_table = np.zeros(int(sizes.sum()))
    a_table = np.zeros(int((sizes * np.maximum(leaf_p, 0)).sum()))
    counts = np.zeros(len(c_table), dtype=np.int64)
    _kernel_tables()(ensemble.roots, ensemble.left, ensemble.right, local, leaf_p, c_start, a_start, shallow_below,
                     np.ascontiguousarray(go_left.view(np.uint8)), weight_a, weight_c, depth, counts, c_table, a_table)
    return LeafTables(local, leaf_groups, leaf_start, leaf_p, shallow_below, deep_below, c_start, a_start, c_table,
                      a_table, limit)


def _below(left: np.ndarray, right: np.ndarray, order: np.ndarray, *flags: np.ndarray) -> None:
    """OR each flag of the children into the parent, children first (reverse pre-order)."""
    for flag in flags:
        _or_up(left, right, order, flag)


def _or_up_py(left, right, order, flag):  # noqa: ANN001, ANN202
    for position in range(order.shape[0] - 1, -1, -1):
        node = order[position]
        if left[node] >= 0 and (flag[left[node]] or flag[right[node]]):
            flag[node] = 1


_or_up = _jit(_or_up_py)


def _paths_py(roots, left, right, node_group, n_groups, max_depth, local, leaf_p, leaf_start, leaf_groups,  # noqa: ANN001, ANN202
              order, tree_of, fill):
    """Depth-first over every tree: `local` per internal node, the path's group count per leaf, the pre-order;
    with `fill`, each leaf's path groups too."""
    seen = np.full(n_groups, -1, np.int64)
    path = np.empty(max_depth + 1, np.int64)
    stack_node = np.empty(2 * max_depth + 2, np.int64)
    stack_len = np.empty(2 * max_depth + 2, np.int64)
    visited = 0
    for t in range(roots.shape[0]):
        length = 0
        stack_node[0] = roots[t]
        stack_len[0] = 0
        top = 1
        while top > 0:
            top -= 1
            node = stack_node[top]
            while length > stack_len[top]:
                length -= 1
                seen[path[length]] = -1
            order[visited] = node
            tree_of[node] = t
            visited += 1
            if left[node] < 0:
                leaf_p[node] = length
                if fill:
                    for j in range(length):
                        leaf_groups[leaf_start[node] + j] = path[j]
                continue
            g = node_group[node]
            if seen[g] < 0:
                seen[g] = length
                path[length] = g
                length += 1
            local[node] = seen[g]
            stack_node[top] = right[node]
            stack_len[top] = length
            stack_node[top + 1] = left[node]
            stack_len[top + 1] = length
            top += 2
        while length > 0:
            length -= 1
            seen[path[length]] = -1


_paths = _jit(_paths_py)


def _tables_py(roots, left, right, local, leaf_p, c_start, a_start, shallow_below, go_left, weight_a, weight_c,  # noqa: ANN001, ANN202
               max_depth, counts, c_table, a_table):
    """Fill the tables tree by tree: which groups each background row satisfies on the way to each
    tabled leaf (a mask, counted), then every mask spread over its subsets."""
    size = go_left.shape[0]
    for t in numba.prange(roots.shape[0]):
        stack_node = np.empty(2 * max_depth + 2, np.int64)
        stack_fail = np.empty(2 * max_depth + 2, np.int64)
        for b in range(size):
            stack_node[0] = roots[t]
            stack_fail[0] = 0
            top = 1 if shallow_below[roots[t]] else 0
            while top > 0:
                top -= 1
                node = stack_node[top]
                fail = stack_fail[top]
                if left[node] < 0:
                    p = leaf_p[node]
                    counts[c_start[node] + (((1 << p) - 1) & ~fail)] += 1
                    continue
                bit = 1 << local[node]
                b_child = left[node] if go_left[b, node] else right[node]
                other = right[node] if go_left[b, node] else left[node]
                if shallow_below[other]:
                    stack_node[top] = other
                    stack_fail[top] = fail | bit
                    top += 1
                if shallow_below[b_child]:
                    stack_node[top] = b_child
                    stack_fail[top] = fail
                    top += 1
        # the tabled leaves of this tree: walk it once more
        stack_node[0] = roots[t]
        top = 1 if shallow_below[roots[t]] else 0
        while top > 0:
            top -= 1
            node = stack_node[top]
            if left[node] >= 0:
                for child in (left[node], right[node]):
                    if shallow_below[child]:
                        stack_node[top] = child
                        top += 1
                continue
            p = leaf_p[node]
            for m in range(1 << p):
                count = counts[c_start[node] + m]
                if count == 0:
                    continue
                share = count / size
                a = p - _popcount_int(m)
                u = m
                while True:
                    c = _popcount_int(u)
                    if a + c > 0:
                        c_table[c_start[node] + u] += share * weight_c[a, c]
                        if a > 0:
                            w = share * weight_a[a, c]
                            row = a_start[node] + u * p
                            for j in range(p):
                                if not (m >> j) & 1:
                                    a_table[row + j] += w
                    if u == 0:
                        break
                    u = (u - 1) & m


def _popcount_small(v):  # noqa: ANN001, ANN202
    count = 0
    while v:
        v &= v - 1
        count += 1
    return count


_popcount_int = _jit(_popcount_small, inline="always")


@cache
def _kernel_tables() -> Callable[..., None]:
    return _jit(_tables_py, parallel=True, nogil=True)


def shapley_values(prepared: Prepared, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values (rows, groups, outputs), raw outputs (rows, outputs)): interventional Shapley values of
    the raw output for each row of X, and that output (the ensemble's, computed in the same walk)."""
    e = prepared.ensemble
    X = np.ascontiguousarray(e.prepare(X))
    n, K, G = len(X), e.n_outputs, prepared.n_groups
    if n == 0 or e.n_trees == 0:
        return np.zeros((n, G, K)), np.tile(e.base, (n, 1))
    threads = numba.get_num_threads()
    small = n * prepared.walked_nodes * prepared.background_size < PARALLEL_WORK
    chunks = 1 if n >= 2 * threads or small else min(threads, e.n_trees)
    bounds = np.arange(chunks + 1, dtype=np.int64) * e.n_trees // chunks
    out = np.zeros((chunks, n, G + 1, K))  # slot G: the sum of the leaves x reaches
    tables = prepared.tables
    if small:  # waking the other threads would cost more than it saves (and a lot on a busy machine)
        numba.set_num_threads(1)
    try:
        _kernel()(e.roots, e.left, e.right, e.feature, e.threshold, _as_uint8(e.missing_left), prepared.value,
                  prepared.leaf_value, prepared.node_group, prepared.background_left, prepared.everyone, 1.0 / prepared.background_size,
                  prepared.weight_a, prepared.weight_c, prepared.max_depth, G, tables.local, tables.leaf_p,
                  tables.leaf_start, tables.leaf_groups, tables.shallow_below, tables.deep_below, tables.c_start,
                  tables.a_start, tables.c_table, tables.a_table, bounds, X, out)
    finally:
        numba.set_num_threads(threads)
    total = out.sum(axis=0) if chunks > 1 else out[0]
    values = total[:, :G]
    L = prepared.leaf_value.shape[1]
    if L < K:
        values[:, :, L] = -values[:, :, :L].sum(axis=2)
    return values, total[:, G] + e.base


def _as_uint8(mask: np.ndarray) -> np.ndarray:
    return mask.view(np.uint8) if mask.dtype == np.bool_ and mask.flags.c_contiguous else mask.astype(np.uint8)


def _go_left(ensemble: TreeEnsemble, X: np.ndarray) -> np.ndarray:
    """(rows, nodes) bool: the row goes left at the node (False at leaves)."""
    inner = ensemble.left >= 0
    columns = X[:, np.where(inner, ensemble.feature, 0)]
    with np.errstate(invalid="ignore"):
        left = np.where(np.isnan(columns), ensemble.missing_left[None, :], columns <= ensemble.threshold[None, :])
    return left & inner[None, :]


def _bits(flags: np.ndarray) -> np.ndarray:
    """(items, rows) bool -> (items, words) uint64, bit r of word r // 64 = flags[:, r]."""
    words = (flags.shape[1] + 63) // 64
    packed = np.packbits(flags, axis=1, bitorder="little")
    padded = np.zeros((flags.shape[0], words * 8), dtype=np.uint8)
    padded[:, :packed.shape[1]] = packed
    return np.ascontiguousarray(padded.view("<u8").astype(np.uint64))


def _max_depth(ensemble: TreeEnsemble) -> int:
    frontier = ensemble.roots
    level = 0
    while len(frontier):
        inner = frontier[ensemble.left[frontier] >= 0]
        frontier = np.concatenate([ensemble.left[inner], ensemble.right[inner]])
        level += 1
    return max(level - 1, 0)


def _weights(depth: int) -> tuple[np.ndarray, np.ndarray]:
    d = depth + 1
    weight_a, weight_c = np.zeros((d, d)), np.zeros((d, d))
    for a in range(d):
        for c in range(d - a):
            total = math.factorial(a + c)
            if a:
                weight_a[a, c] = math.factorial(a - 1) * math.factorial(c) / total
            if c:
                weight_c[a, c] = math.factorial(a) * math.factorial(c - 1) / total
    return weight_a, weight_c




def _release_groups(groups, count, keep, state, pending, phi, sign):  # noqa: ANN001, ANN202
    """Drop list positions >= keep: each dropped group is paid what is pending for it."""
    while count > keep:
        count -= 1
        g = groups[count]
        state[g] = 0
        for k in range(pending.shape[1]):
            phi[g, k] += sign * pending[count, k]
            if count:
                pending[count - 1, k] += pending[count, k]
            pending[count, k] = 0.0
    return count


_release = _jit(_release_groups, inline="always")


def _table_tree(root, x, left, right, feature, threshold, missing_left, leaf_value, local, leaf_p, leaf_start,  # noqa: ANN001, ANN202
                leaf_groups, shallow_below, c_start, a_start, c_table, a_table, stack_node, stack_mask, phi):
    """One explained row, one tree: the tabled leaves' share, by lookup (see LeafTables)."""
    if not shallow_below[root]:
        return
    L = leaf_value.shape[1]
    stack_node[0] = root
    stack_mask[0] = 0
    top = 1
    while top > 0:
        top -= 1
        node = stack_node[top]
        fail = stack_mask[top]
        while left[node] >= 0:
            v = x[feature[node]]
            x_goes_left = missing_left[node] != 0 if np.isnan(v) else v <= threshold[node]
            x_child = left[node] if x_goes_left else right[node]
            other = right[node] if x_goes_left else left[node]
            if shallow_below[other]:
                stack_node[top] = other
                stack_mask[top] = fail | (1 << local[node])
                top += 1
            if not shallow_below[x_child]:
                node = -1
                break
            node = x_child
        if node < 0:
            continue
        p = leaf_p[node]
        lose = c_table[c_start[node] + fail]
        row = a_start[node] + fail * p
        first = leaf_start[node]
        for j in range(p):
            weight = -lose if (fail >> j) & 1 else a_table[row + j]
            if weight != 0.0:
                g = leaf_groups[first + j]
                for k in range(L):
                    phi[g, k] += weight * leaf_value[node, k]


_table = _jit(_table_tree)


def _walk_tree(root, x, left, right, feature, threshold, missing_left, value, leaf_value, node_group,  # noqa: ANN001, ANN202, C901, PLR0912, PLR0915
               background_left, everyone, share, weight_a, weight_c, deep_below, scratch, stack_bits, rows, pending,
               phi):
    """One explained row, one tree, the whole background: add to phi[group, :] the Shapley values of
    the `leaf_value` columns, and to phi[-1, :] the `value` of the leaf x reaches (the output).

    Adding a leaf's share to every group of A (and of C) would cost |A| + |C| per leaf; instead
    pending[p] holds an amount owed to the groups at positions 0..p of the A list (likewise for C) and
    is paid, and passed down to position p - 1, when the group at position p leaves the list. Only the
    leaves `deep_below` marks are walked to; the others are tabled."""
    K = value.shape[1]
    L = leaf_value.shape[1]
    W = everyone.shape[0]
    n_groups = phi.shape[0] - 1
    state = scratch[0]  # per group: 0 undecided, 1 in A (x's side), 2 in C (b's side)
    in_a = scratch[1]
    in_c = scratch[2]
    stack_node = scratch[3]
    stack_a = scratch[4]
    stack_c = scratch[5]
    stack_group = scratch[6]  # the group that joins A (kind 1) or C (kind 2) when the entry is taken
    stack_kind = scratch[7]
    pending_a = pending[0]
    pending_c = pending[1]
    node = root
    while left[node] >= 0:
        v = x[feature[node]]
        x_goes_left = missing_left[node] != 0 if np.isnan(v) else v <= threshold[node]
        node = left[node] if x_goes_left else right[node]
    for k in range(K):
        phi[n_groups, k] += value[node, k]

    a = 0
    c = 0
    stack_node[0] = root
    stack_a[0] = 0
    stack_c[0] = 0
    stack_kind[0] = 0
    for w in range(W):
        stack_bits[0, w] = everyone[w]
    top = 1
    while top > 0:
        top -= 1
        a = _release(in_a, a, stack_a[top], state, pending_a, phi, 1.0)
        c = _release(in_c, c, stack_c[top], state, pending_c, phi, -1.0)
        node = stack_node[top]
        kind = stack_kind[top]
        if kind == 1:
            g = stack_group[top]
            state[g] = 1
            in_a[a] = g
            a += 1
        elif kind == 2:
            g = stack_group[top]
            state[g] = 2
            in_c[c] = g
            c += 1
        for w in range(W):
            rows[w] = stack_bits[top, w]
        while left[node] >= 0 and deep_below[node]:
            g = node_group[node]
            s = state[g]
            v = x[feature[node]]
            x_goes_left = missing_left[node] != 0 if np.isnan(v) else v <= threshold[node]
            x_child = left[node] if x_goes_left else right[node]
            if s == 1:
                node = x_child
                continue
            other = right[node] if x_goes_left else left[node]
            any_with = False
            any_against = False
            for w in range(W):
                going_left = rows[w] & background_left[node, w]
                with_x = going_left if x_goes_left else rows[w] ^ going_left
                against = rows[w] ^ with_x
                stack_bits[top, w] = against
                rows[w] = with_x
                any_with = any_with or with_x != 0
                any_against = any_against or against != 0
            if s == 2:  # g comes from b: each background row goes its own way
                if any_against:
                    if any_with:
                        stack_node[top] = other
                        stack_a[top] = a
                        stack_c[top] = c
                        stack_kind[top] = 0
                        top += 1
                        node = x_child
                    else:
                        for w in range(W):
                            rows[w] = stack_bits[top, w]
                        node = other
                else:
                    node = x_child
                continue
            if any_against:  # fork: x's side with g in A, the other side with g in C
                stack_node[top] = other
                stack_a[top] = a
                stack_c[top] = c
                stack_group[top] = g
                stack_kind[top] = 2
                for w in range(W):
                    stack_bits[top + 1, w] = stack_bits[top, w]
                stack_node[top + 1] = x_child
                stack_a[top + 1] = a
                stack_c[top + 1] = c
                stack_group[top + 1] = g
                stack_kind[top + 1] = 1
                top += 2
            if not any_with:
                break
            node = x_child
        if left[node] >= 0 or a + c == 0 or not deep_below[node]:
            continue
        count = 0.0
        for w in range(W):
            count += float(_popcount(rows[w]))
        if a:
            amount = share * count * weight_a[a, c]
            for k in range(L):
                pending_a[a - 1, k] += amount * leaf_value[node, k]
        if c:
            amount = share * count * weight_c[a, c]
            for k in range(L):
                pending_c[c - 1, k] += amount * leaf_value[node, k]
    _release(in_a, a, 0, state, pending_a, phi, 1.0)
    _release(in_c, c, 0, state, pending_c, phi, -1.0)


_walk = _jit(_walk_tree)


def _walks(roots, left, right, feature, threshold, missing_left, value, leaf_value, node_group, background_left,  # noqa: ANN001, ANN202
           everyone, share, weight_a, weight_c, max_depth, n_groups, local, leaf_p, leaf_start, leaf_groups,
           shallow_below, deep_below, c_start, a_start, c_table, a_table, bounds, X, out):
    n = X.shape[0]
    chunks = bounds.shape[0] - 1
    size = max(2 * max_depth + 2, n_groups)
    for job in numba.prange(n * chunks):
        i = job // chunks
        chunk = job % chunks
        scratch = np.zeros((8, size), np.int64)
        stack_bits = np.empty((size, everyone.shape[0]), np.uint64)
        rows = np.empty(everyone.shape[0], np.uint64)
        pending = np.zeros((2, max_depth + 1, leaf_value.shape[1]))
        for t in range(bounds[chunk], bounds[chunk + 1]):
            _table(roots[t], X[i], left, right, feature, threshold, missing_left, leaf_value, local, leaf_p,
                   leaf_start, leaf_groups, shallow_below, c_start, a_start, c_table, a_table, scratch[3], scratch[4],
                   out[chunk, i])
            _walk(roots[t], X[i], left, right, feature, threshold, missing_left, value, leaf_value, node_group,
                  background_left, everyone, share, weight_a, weight_c, deep_below, scratch, stack_bits, rows,
                  pending, out[chunk, i])


@cache
def _kernel() -> Callable[..., None]:
    return _jit(_walks, parallel=True, nogil=True)
