//! Minimum-cost flow for `reassign generate`: successive shortest paths with Dijkstra on
//! reduced costs (Johnson potentials), one unit per path. (Thousands of partitions take
//! seconds; the plans this serves are usually far smaller.)
//!
//! Edges may have a *convex* cost: the `j`-th unit through an edge (1-based) costs
//! `base + step * (j - 1)`, which is what makes the planner spread replicas evenly (the
//! marginal cost of one more replica on a broker grows with its load). Such an edge is the
//! same as parallel unit edges of growing cost, so the usual optimality argument holds:
//! after each augmentation the flow is the cheapest of its size.
//!
//! Costs may be negative on the first graph as long as it has no negative cycle (the
//! planner's graphs are layered DAGs); the first potentials come from Bellman-Ford.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Stands for "unreachable" in distances; far above any path cost the planner builds.
const INFINITE: i64 = i64::MAX / 4;

#[derive(Debug, Clone)]
struct Edge {
    from: usize,
    to: usize,
    cap: i64,
    flow: i64,
    /// Cost of the first unit.
    base: i64,
    /// Added to the cost of each further unit (0: a plain linear edge).
    step: i64,
}

impl Edge {
    /// Cost of pushing one more unit forward.
    fn forward_cost(&self) -> i64 {
        self.base + self.step * self.flow
    }

    /// Cost of taking the last unit back (negative of what it cost).
    fn backward_cost(&self) -> i64 {
        -(self.base + self.step * (self.flow - 1))
    }
}

/// A flow network; nodes are `0..nodes`.
#[derive(Debug, Clone)]
pub struct Network {
    edges: Vec<Edge>,
    /// Per node: (edge index, forward?) of each residual arc leaving it.
    arcs: Vec<Vec<(usize, bool)>>,
}

impl Network {
    pub fn new(nodes: usize) -> Network {
        Network {
            edges: Vec::new(),
            arcs: vec![Vec::new(); nodes],
        }
    }

    /// Adds a node and returns its index.
    pub fn add_node(&mut self) -> usize {
        self.arcs.push(Vec::new());
        self.arcs.len() - 1
    }

    /// Adds an edge of capacity `cap` whose `j`-th unit costs `base + step * (j - 1)`
    /// (`step >= 0`); returns its index for [`Network::flow`].
    pub fn add_edge(&mut self, from: usize, to: usize, cap: i64, base: i64, step: i64) -> usize {
        debug_assert!(step >= 0, "only convex costs");
        let i = self.edges.len();
        self.edges.push(Edge {
            from,
            to,
            cap,
            flow: 0,
            base,
            step,
        });
        self.arcs[from].push((i, true));
        self.arcs[to].push((i, false));
        i
    }

    /// Units through edge `i`.
    pub fn flow(&self, i: usize) -> i64 {
        self.edges[i].flow
    }

    /// The residual arc `(edge, forward)`: (head, cost), or `None` when saturated.
    fn residual(&self, edge: usize, forward: bool) -> Option<(usize, i64)> {
        let e = &self.edges[edge];
        if forward {
            (e.flow < e.cap).then(|| (e.to, e.forward_cost()))
        } else {
            (e.flow > 0).then(|| (e.from, e.backward_cost()))
        }
    }

    /// Sends up to `limit` units from `source` to `sink` at the least total cost; returns
    /// how many went (less than `limit` only when the network cannot carry more).
    pub fn min_cost_flow(&mut self, source: usize, sink: usize, limit: i64) -> i64 {
        let n = self.arcs.len();
        let mut potential = self.initial_potentials(source);
        let mut sent = 0;
        let mut dist = vec![INFINITE; n];
        let mut via: Vec<Option<(usize, bool)>> = vec![None; n];
        let mut done = vec![false; n];
        while sent < limit {
            dist.fill(INFINITE);
            via.fill(None);
            done.fill(false);
            dist[source] = 0;
            let mut heap = BinaryHeap::new();
            heap.push(Reverse((0i64, source)));
            while let Some(Reverse((d, u))) = heap.pop() {
                if done[u] {
                    continue;
                }
                done[u] = true;
                if u == sink {
                    break;
                }
                for &(edge, forward) in &self.arcs[u] {
                    let Some((v, cost)) = self.residual(edge, forward) else {
                        continue;
                    };
                    if done[v] || potential[v] >= INFINITE {
                        continue;
                    }
                    let reduced = cost + potential[u] - potential[v];
                    debug_assert!(reduced >= 0, "negative reduced cost {reduced}");
                    let nd = d + reduced;
                    if nd < dist[v] {
                        dist[v] = nd;
                        via[v] = Some((edge, forward));
                        heap.push(Reverse((nd, v)));
                    }
                }
            }
            if !done[sink] {
                break;
            }
            // Nodes not settled are at least as far as the sink: capping their distance
            // there keeps every reduced cost non-negative.
            let cap = dist[sink];
            for v in 0..n {
                if potential[v] < INFINITE {
                    potential[v] += if done[v] { dist[v] } else { cap };
                }
            }
            let mut v = sink;
            while let Some((edge, forward)) = via[v] {
                let e = &mut self.edges[edge];
                if forward {
                    e.flow += 1;
                    v = e.from;
                } else {
                    e.flow -= 1;
                    v = e.to;
                }
            }
            sent += 1;
        }
        sent
    }

    /// Shortest distances from `source` over the residual arcs, by Bellman-Ford (queue
    /// based); unreachable nodes stay at [`INFINITE`] and are never entered later, since
    /// augmenting only changes arcs between reachable nodes.
    fn initial_potentials(&self, source: usize) -> Vec<i64> {
        let n = self.arcs.len();
        let mut dist = vec![INFINITE; n];
        let mut queued = vec![false; n];
        let mut queue = std::collections::VecDeque::new();
        dist[source] = 0;
        queue.push_back(source);
        queued[source] = true;
        while let Some(u) = queue.pop_front() {
            queued[u] = false;
            for &(edge, forward) in &self.arcs[u] {
                let Some((v, cost)) = self.residual(edge, forward) else {
                    continue;
                };
                if dist[u] + cost < dist[v] {
                    dist[v] = dist[u] + cost;
                    if !queued[v] {
                        queued[v] = true;
                        queue.push_back(v);
                    }
                }
            }
        }
        dist
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_cheaper_path() {
        // 0 → 1 → 3 costs 5, 0 → 2 → 3 costs 2; one unit each way fits.
        let mut net = Network::new(4);
        let a = net.add_edge(0, 1, 1, 2, 0);
        net.add_edge(1, 3, 1, 3, 0);
        let b = net.add_edge(0, 2, 1, 1, 0);
        net.add_edge(2, 3, 1, 1, 0);
        assert_eq!(net.min_cost_flow(0, 3, 1), 1);
        assert_eq!((net.flow(a), net.flow(b)), (0, 1));
        assert_eq!(net.min_cost_flow(0, 3, 5), 1, "one more unit fits");
        assert_eq!((net.flow(a), net.flow(b)), (1, 1));
    }

    #[test]
    fn convex_edges_spread_the_load() {
        // Six units from 0 to 3 through 1 or 2, each with a growing marginal cost; 1 has
        // a head start of one cost step.
        let mut net = Network::new(4);
        net.add_edge(0, 1, 10, 0, 0);
        net.add_edge(0, 2, 10, 0, 0);
        let x = net.add_edge(1, 3, 10, 0, 10);
        let y = net.add_edge(2, 3, 10, 10, 10);
        assert_eq!(net.min_cost_flow(0, 3, 6), 6);
        // Marginal costs 0,10,20,30 on x and 10,20,30 on y: the six cheapest units are
        // 0,10,10,20,20 and one 30.
        assert!((net.flow(x), net.flow(y)) == (4, 2) || (net.flow(x), net.flow(y)) == (3, 3));
        assert_eq!(net.flow(x) + net.flow(y), 6);
    }

    #[test]
    fn negative_costs_and_rerouting() {
        // Two sources of demand share two sinks; the cheap negative edge is taken and the
        // second unit reroutes the first when that is cheaper overall.
        //   s=0, a=1, b=2, x=3, y=4, t=5
        let mut net = Network::new(6);
        net.add_edge(0, 1, 1, 0, 0);
        net.add_edge(0, 2, 1, 0, 0);
        let ax = net.add_edge(1, 3, 1, -1, 0);
        let ay = net.add_edge(1, 4, 1, 0, 0);
        let bx = net.add_edge(2, 3, 1, 0, 0);
        net.add_edge(2, 4, 1, 5, 0);
        net.add_edge(3, 5, 2, 0, 100);
        net.add_edge(4, 5, 2, 0, 100);
        assert_eq!(net.min_cost_flow(0, 5, 2), 2);
        // Best: b → x (0) and a → y (0), each sink once: total 0 + 0; a → x would force
        // b → y (5) or both on x (100).
        assert_eq!((net.flow(ax), net.flow(ay), net.flow(bx)), (0, 1, 1));
    }

    #[test]
    fn stops_when_nothing_more_fits() {
        let mut net = Network::new(3);
        net.add_edge(0, 1, 2, 0, 0);
        net.add_edge(1, 2, 1, 0, 0);
        assert_eq!(net.min_cost_flow(0, 2, 5), 1);
    }
}
