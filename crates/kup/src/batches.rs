//! Batches of workers drained at once that keep every PodDisruptionBudget whole: a batch never
//! costs a budget more disruptions than it allows now. The eviction API would refuse the excess
//! anyway (429), but then the batch's drains wait on each other for the drain timeout while their
//! nodes are out; a smaller batch finishes sooner and keeps the workload's quorum by design.

use serde_json::Value;
use std::collections::BTreeMap;

/// What draining a node costs each budget (`namespace/name` -> pods it covers there).
pub type Cost = BTreeMap<String, u32>;

/// The next batch: how many of `candidates` (in order, at most `size`, at least 1) can be drained
/// together within `allowed` (budget -> disruptions allowed now), and why it stops short of
/// `size` when it does. The first worker always goes, even beyond its budgets: its drain then
/// waits for them as `kubectl drain` would (the plan names a budget that can never allow it).
pub fn next(
    candidates: &[(&str, Cost)],
    size: usize,
    allowed: &BTreeMap<String, i64>,
) -> (usize, Option<String>) {
    let mut spent: BTreeMap<&str, i64> = BTreeMap::new();
    let mut taken = 0;
    for (node, cost) in candidates.iter().take(size.max(1)) {
        let over = cost.iter().find(|(budget, pods)| {
            let after = spent.get(budget.as_str()).copied().unwrap_or(0) + i64::from(**pods);
            after > allowed.get(*budget).copied().unwrap_or(0)
        });
        if let (Some((budget, _)), true) = (over, taken > 0) {
            let allows = allowed.get(budget).copied().unwrap_or(0);
            let would = spent.get(budget.as_str()).copied().unwrap_or(0) + i64::from(cost[budget]);
            return (
                taken,
                Some(format!(
                    "a batch of {taken}, not {size}: draining {node} with it would cost PodDisruptionBudget \
                     {budget} {would} disruptions, and it allows {allows} now"
                )),
            );
        }
        for (budget, pods) in cost {
            *spent.entry(budget.as_str()).or_default() += i64::from(*pods);
        }
        taken += 1;
    }
    (taken.max(1), None)
}

/// From a cluster_survey result: each named node's cost (none when the survey does not list it),
/// and every budget's allowance.
pub fn from_survey(survey: &Value, nodes: &[&str]) -> (Vec<Cost>, BTreeMap<String, i64>) {
    let rows = survey["nodes"].as_array().map(Vec::as_slice).unwrap_or_default();
    let costs = nodes
        .iter()
        .map(|name| {
            rows.iter()
                .find(|r| r["name"] == *name)
                .and_then(|r| r["budgeted"].as_object())
                .map(|b| {
                    b.iter()
                        .filter_map(|(k, v)| Some((k.clone(), u32::try_from(v.as_u64()?).ok()?)))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let allowed = survey["pdb_allowances"]
        .as_object()
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_i64()?)))
                .collect()
        })
        .unwrap_or_default();
    (costs, allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cost(pairs: &[(&str, u32)]) -> Cost {
        pairs.iter().map(|(b, n)| (b.to_string(), *n)).collect()
    }

    fn allowed(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(b, n)| (b.to_string(), *n)).collect()
    }

    #[test]
    fn a_batch_stops_before_the_worker_that_would_overspend_a_budget() {
        // web allows 1: its pods on w1 and w3 cannot go in one batch.
        let workers = [
            ("w1", cost(&[("default/web", 1)])),
            ("w2", cost(&[("default/db", 1)])),
            ("w3", cost(&[("default/web", 1)])),
            ("w4", cost(&[])),
        ];
        let budgets = allowed(&[("default/web", 1), ("default/db", 2)]);
        let (n, why) = next(&workers, 4, &budgets);
        assert_eq!(n, 2);
        let why = why.unwrap();
        assert!(why.contains("a batch of 2, not 4: draining w3"), "{why}");
        assert!(
            why.contains("default/web 2 disruptions, and it allows 1 now"),
            "{why}"
        );
        // The next batch starts at w3 and takes the rest.
        assert_eq!(next(&workers[2..], 4, &budgets), (2, None));
    }

    #[test]
    fn the_batch_size_still_bounds_a_batch_and_the_first_worker_always_goes() {
        let free = [("w1", cost(&[])), ("w2", cost(&[])), ("w3", cost(&[]))];
        assert_eq!(next(&free, 2, &allowed(&[])), (2, None));
        assert_eq!(next(&free, 0, &allowed(&[])), (1, None));
        // A budget that allows nothing: its first node alone (its drain waits, as kubectl's).
        let strict = [
            ("w1", cost(&[("default/q", 1)])),
            ("w2", cost(&[("default/q", 1)])),
        ];
        let (n, why) = next(&strict, 5, &allowed(&[("default/q", 0)]));
        assert_eq!(n, 1);
        assert!(why.unwrap().contains("it allows 0 now"));
        // A budget the survey did not list allows nothing (stricter, never more lenient).
        assert_eq!(next(&strict, 5, &allowed(&[])).0, 1);
    }

    #[test]
    fn costs_and_allowances_are_read_from_the_survey() {
        let survey = json!({
            "nodes": [
                {"name": "w1", "budgeted": {"default/web": 2}},
                {"name": "w2"}
            ],
            "pdb_allowances": {"default/web": 3}
        });
        let (costs, budgets) = from_survey(&survey, &["w1", "w2", "w9"]);
        assert_eq!(costs, vec![cost(&[("default/web", 2)]), cost(&[]), cost(&[])]);
        assert_eq!(budgets, allowed(&[("default/web", 3)]));
    }
}
