//! Integer max-flow, for paying tasks their exact money from pledges.
//!
//! Dinic's algorithm written here rather than petgraph's `algo::dinics`,
//! because on the networks `fund_exactly` builds (source, pledges, tasks,
//! sink) petgraph's is slower at every size measured, and several times
//! slower on large ones: `cargo bench -p solver-core --bench max_flow`
//! (figures in BENCHMARKS.md, "Max-flow"). The bench checks both give the
//! same maximum on every network.

/// Dinic's max-flow on integer capacities.
pub struct MaxFlow {
    /// (to, capacity left, index of the reverse edge)
    edges: Vec<(usize, u64, usize)>,
    original: Vec<u64>,
    adjacency: Vec<Vec<usize>>,
}

impl MaxFlow {
    /// A network of `nodes` nodes, numbered from 0, and no edges.
    pub fn new(nodes: usize) -> MaxFlow {
        MaxFlow {
            edges: Vec::new(),
            original: Vec::new(),
            adjacency: vec![Vec::new(); nodes],
        }
    }

    /// Adds an edge and its reverse; returns the edge's index for [`MaxFlow::flow_on`].
    pub fn add_edge(&mut self, from: usize, to: usize, capacity: u64) -> usize {
        let forward = self.edges.len();
        self.edges.push((to, capacity, forward + 1));
        self.original.push(capacity);
        self.edges.push((from, 0, forward));
        self.original.push(0);
        self.adjacency[from].push(forward);
        self.adjacency[to].push(forward + 1);
        forward
    }

    /// The flow on `edge` after [`MaxFlow::run`].
    pub fn flow_on(&self, edge: usize) -> u64 {
        self.original[edge] - self.edges[edge].1
    }

    /// Pushes the maximum flow from `source` to `sink` and returns it.
    pub fn run(&mut self, source: usize, sink: usize) -> u64 {
        let nodes = self.adjacency.len();
        let mut total: u64 = 0;
        loop {
            let mut level = vec![usize::MAX; nodes];
            level[source] = 0;
            let mut queue = std::collections::VecDeque::from([source]);
            while let Some(node) = queue.pop_front() {
                for &edge in &self.adjacency[node] {
                    let (to, capacity, _) = self.edges[edge];
                    if capacity > 0 && level[to] == usize::MAX {
                        level[to] = level[node] + 1;
                        queue.push_back(to);
                    }
                }
            }
            if level[sink] == usize::MAX {
                return total;
            }
            let mut next_edge = vec![0usize; nodes];
            loop {
                let pushed = self.push(source, sink, u64::MAX, &level, &mut next_edge);
                if pushed == 0 {
                    break;
                }
                total = total.saturating_add(pushed);
            }
        }
    }

    fn push(
        &mut self,
        node: usize,
        sink: usize,
        limit: u64,
        level: &[usize],
        next_edge: &mut [usize],
    ) -> u64 {
        if node == sink {
            return limit;
        }
        while next_edge[node] < self.adjacency[node].len() {
            let edge = self.adjacency[node][next_edge[node]];
            let (to, capacity, reverse) = self.edges[edge];
            if capacity > 0 && level[to] == level[node] + 1 {
                let pushed = self.push(to, sink, limit.min(capacity), level, next_edge);
                if pushed > 0 {
                    self.edges[edge].1 -= pushed;
                    self.edges[reverse].1 += pushed;
                    return pushed;
                }
            }
            next_edge[node] += 1;
        }
        0
    }
}
