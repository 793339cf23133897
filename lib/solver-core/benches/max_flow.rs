//! The max-flow behind exact funding, ours against petgraph's
//! `algo::dinics`, on networks of the shape `fund_exactly` builds: the
//! source to each pledge (its cents left), each pledge to the tasks it may
//! pay (each task's money), each task to the sink (its money). Both must
//! find the same maximum, and the flows on the gift edges must add up to it.
//!
//!     cargo bench -p solver-core --bench max_flow
//!
//! Networks come from a fixed-seed generator, so every run measures the same ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use petgraph::algo::dinics;
use petgraph::graph::{Graph, NodeIndex};
use solver_core::flow::MaxFlow;

struct Network {
    pledges: Vec<u64>,
    tasks: Vec<u64>,
    /// (pledge, task) pairs a pledge may pay.
    gifts: Vec<(usize, usize)>,
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants): enough
/// for repeatable networks, and no dependency for it.
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

fn network(pledges: usize, tasks: usize, pledges_per_task: usize, seed: u64) -> Network {
    let mut state = seed;
    let pledge_cents = (0..pledges)
        .map(|_| 1_000 + next(&mut state) % 50_000)
        .collect();
    let task_cents = (0..tasks)
        .map(|_| 500 + next(&mut state) % 40_000)
        .collect();
    let mut gifts = Vec::new();
    for task in 0..tasks {
        for _ in 0..pledges_per_task {
            gifts.push((next(&mut state) as usize % pledges, task));
        }
    }
    gifts.sort_unstable();
    gifts.dedup();
    Network {
        pledges: pledge_cents,
        tasks: task_cents,
        gifts,
    }
}

fn ours(network: &Network) -> u64 {
    let pledges = network.pledges.len();
    let mut flow = MaxFlow::new(2 + pledges + network.tasks.len());
    for (pledge, &cents) in network.pledges.iter().enumerate() {
        flow.add_edge(0, 2 + pledge, cents);
    }
    for (task, &cents) in network.tasks.iter().enumerate() {
        flow.add_edge(2 + pledges + task, 1, cents);
    }
    let edges: Vec<usize> = network
        .gifts
        .iter()
        .map(|&(pledge, task)| flow.add_edge(2 + pledge, 2 + pledges + task, network.tasks[task]))
        .collect();
    let total = flow.run(0, 1);
    assert_eq!(
        edges.iter().map(|&edge| flow.flow_on(edge)).sum::<u64>(),
        total
    );
    total
}

fn petgraphs(network: &Network) -> u64 {
    let mut graph: Graph<(), u64> = Graph::new();
    let source = graph.add_node(());
    let sink = graph.add_node(());
    let pledge_nodes: Vec<NodeIndex> = network
        .pledges
        .iter()
        .map(|&cents| {
            let node = graph.add_node(());
            graph.add_edge(source, node, cents);
            node
        })
        .collect();
    let task_nodes: Vec<NodeIndex> = network
        .tasks
        .iter()
        .map(|&cents| {
            let node = graph.add_node(());
            graph.add_edge(node, sink, cents);
            node
        })
        .collect();
    let edges: Vec<_> = network
        .gifts
        .iter()
        .map(|&(pledge, task)| {
            graph.add_edge(pledge_nodes[pledge], task_nodes[task], network.tasks[task])
        })
        .collect();
    let (total, flows) = dinics(&graph, source, sink);
    assert_eq!(
        edges.iter().map(|edge| flows[edge.index()]).sum::<u64>(),
        total
    );
    total
}

fn main() {
    println!("| pledges x tasks (pledges per task) | networks | ours, us per network | petgraph dinics, us per network | petgraph / ours |");
    println!("|---|---|---|---|---|");
    for (pledges, tasks, per_task, count) in [
        (5, 8, 3, 20_000),
        (40, 60, 5, 2_000),
        (300, 400, 8, 100),
        (2_000, 1_500, 10, 10),
    ] {
        let networks: Vec<Network> = (1..=count)
            .map(|seed| network(pledges, tasks, per_task, seed))
            .collect();
        let started = Instant::now();
        let our_total: u64 = networks.iter().map(ours).sum();
        let our_time = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let their_total: u64 = networks.iter().map(petgraphs).sum();
        let their_time = started.elapsed().as_secs_f64();
        assert_eq!(our_total, their_total, "the two max-flows disagree");
        let per = |seconds: f64| seconds * 1e6 / count as f64;
        println!(
            "| {pledges} x {tasks} ({per_task}) | {count} | {:.1} | {:.1} | {:.2} |",
            per(our_time),
            per(their_time),
            their_time / our_time
        );
    }
}
