//! Parsing `kubeadm upgrade plan` output into JSON: every component table, and the suggested target.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    pub name: String,
    /// The node, in the "must be upgraded manually" tables of newer releases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub current: String,
    pub available: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub components: Vec<Component>,
    /// The version of the suggested `kubeadm upgrade apply vX` command.
    pub target: Option<String>,
    pub up_to_date: bool,
}

pub fn parse(output: &str) -> Plan {
    let mut components = Vec::new();
    let mut target = None;
    let mut columns: Option<bool> = None; // Some(has_node_column) while inside a table
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"COMPONENT") {
            columns = Some(words.contains(&"NODE"));
            continue;
        }
        if words.is_empty() {
            columns = None;
            continue;
        }
        if let Some(pos) = words
            .windows(3)
            .position(|w| w[0] == "kubeadm" && w[1] == "upgrade" && w[2] == "apply")
        {
            target = words.get(pos + 3).map(|v| v.to_string());
            continue;
        }
        let Some(has_node) = columns else { continue };
        let fixed = if has_node { 3 } else { 2 };
        if words.len() <= fixed {
            continue;
        }
        let (name, rest) = words.split_at(words.len() - fixed);
        let (node, versions) = if has_node {
            (Some(rest[0].to_string()), &rest[1..])
        } else {
            (None, rest)
        };
        components.push(Component {
            name: name.join(" "),
            node,
            current: versions[0].to_string(),
            available: versions[1].to_string(),
        });
    }
    let up_to_date = output.contains("up-to-date") && target.is_none();
    Plan {
        components,
        target,
        up_to_date,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_runbook_table() {
        let text = "[upgrade/versions] kubeadm version: v1.9.2\n\nUpgrade to the latest stable version:\n\n\
            COMPONENT            CURRENT   AVAILABLE\nAPI Server           v1.8.3    v1.9.2\n\
            Controller Manager   v1.8.3    v1.9.2\nScheduler            v1.8.3    v1.9.2\n\
            Kube Proxy           v1.8.3    v1.9.2\nKube DNS             1.14.5    1.14.7\n\
            Etcd                 3.2.7     3.1.11\n\nYou can now apply the upgrade by executing the following command:\n\n\
            \tkubeadm upgrade apply v1.9.2\n";
        let plan = parse(text);
        assert_eq!(plan.components.len(), 6);
        assert_eq!(plan.components[1].name, "Controller Manager");
        assert_eq!(plan.components[4].current, "1.14.5");
        assert_eq!(plan.components[5].available, "3.1.11");
        assert_eq!(plan.target.as_deref(), Some("v1.9.2"));
        assert!(!plan.up_to_date);
    }

    #[test]
    fn parses_modern_tables_with_a_node_column() {
        let text = "Components that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':\n\
            COMPONENT   NODE       CURRENT   TARGET\nkubelet     lab-cp1    v1.29.6   v1.30.2\n\n\
            Upgrade to the latest stable version:\n\nCOMPONENT                 NODE      CURRENT    TARGET\n\
            kube-apiserver            lab-cp1   v1.29.6    v1.30.2\n\n\
            You can now apply the upgrade by executing the following command:\n\n\tkubeadm upgrade apply v1.30.2\n";
        let plan = parse(text);
        assert_eq!(plan.components.len(), 2);
        assert_eq!(plan.components[0].node.as_deref(), Some("lab-cp1"));
        assert_eq!(plan.components[1].name, "kube-apiserver");
        assert_eq!(plan.target.as_deref(), Some("v1.30.2"));
    }

    #[test]
    fn up_to_date_has_no_target() {
        let plan =
            parse("[upgrade/versions] Cluster version: v1.9.2\n\nAwesome, you're up-to-date! Enjoy!\n");
        assert!(plan.up_to_date);
        assert!(plan.components.is_empty());
        assert_eq!(plan.target, None);
    }
}
