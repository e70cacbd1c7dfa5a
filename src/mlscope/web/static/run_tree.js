// The tree of nested runs in the runs view: which top-level rows are expanded, their children (fetched from
// the server the first time a row opens, then kept until the order or filter changes), and which run sits at
// each row of the virtual table. Top-level runs stay in the view's server-side pages; only open subtrees
// are held here.

function visibleRows(node) {
  const rows = [node];
  if (node.open && node.children) for (const child of node.children) rows.push(...visibleRows(child));
  return rows;
}

export function treeNode(run, depth) {
  return {run, depth, open: false, loading: false, children: null};
}

export class RunTree {
  // loadChildren(run) resolves to the run's children, in the view's order.
  constructor(loadChildren) {
    this.loadChildren = loadChildren;
    this.roots = new Map();  // index among the top-level runs -> {node, rows}
  }

  clear() {
    this.roots = new Map();
  }

  // Rows the open subtrees add below their top-level run.
  get extraRows() {
    let extra = 0;
    for (const root of this.roots.values()) extra += root.rows.length - 1;
    return extra;
  }

  // Row `index` of the table: {top, node} inside an open subtree, else {top} (the top-level run number `top`,
  // to be read from the view's pages).
  locate(index) {
    let shift = 0;
    for (const [top, root] of [...this.roots.entries()].sort((a, b) => a[0] - b[0])) {
      const start = top + shift;
      if (index < start) break;
      if (index < start + root.rows.length) return {top, node: root.rows[index - start]};
      shift += root.rows.length - 1;
    }
    return {top: index - shift, node: null};
  }

  // Open or close `node` (a top-level run's node is made on first use); resolves once its children are in.
  async toggle(top, node) {
    let root = this.roots.get(top);
    if (!root) {
      root = {node, rows: [node]};
      this.roots.set(top, root);
    }
    if (node.loading) return;
    if (!node.open && node.children === null) {
      node.loading = true;
      try {
        node.children = (await this.loadChildren(node.run)).map((run) => treeNode(run, node.depth + 1));
      } finally {
        node.loading = false;
      }
    }
    node.open = !node.open;
    root.rows = visibleRows(root.node);
  }
}
