//! Ansible inventories, INI or YAML: the `control_plane` (alias `masters`) and `workers` (alias
//! `nodes`) groups, with host and group variables.

use kube_eras::TakeOut;
use kube_kit::NodeName;
use serde_json::{Map, Value};
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// The inventory name.
    pub name: String,
    /// Variables: `all` vars, then group vars, then host vars (later wins).
    pub vars: Map<String, Value>,
    /// The Kubernetes node name (`node_name`, default the inventory name), checked when the
    /// inventory is read: a name Kubernetes would refuse stops kup before it changes anything.
    pub node_name: NodeName,
}

impl Host {
    pub fn var(&self, key: &str) -> Option<String> {
        match self.vars.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    pub fn is_local(&self) -> bool {
        self.var("ansible_connection").as_deref() == Some("local")
    }

    /// `units`: the services the runbook's era stops before the packages and starts after them, in
    /// stop order (a YAML list, or `keepalived,kubelet,containerd` in INI); `None`: the default.
    pub fn units(&self) -> Option<Vec<String>> {
        let list: Vec<String> = match self.vars.get("units")? {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect(),
            Value::String(s) => s.split(',').map(str::to_string).collect(),
            _ => return None,
        };
        let list: Vec<String> = list
            .into_iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        (!list.is_empty()).then_some(list)
    }

    /// `take_out`: `cordon` or `drain`, overriding how the target's era takes this node out.
    pub fn take_out(&self) -> Option<TakeOut> {
        match self.var("take_out")?.trim() {
            "cordon" => Some(TakeOut::Cordon),
            "drain" => Some(TakeOut::Drain),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// Control planes in inventory order: the first is the primary.
    pub control_plane: Vec<Host>,
    pub workers: Vec<Host>,
    /// The `all` group's variables.
    pub vars: Map<String, Value>,
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Inventory, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read inventory {}: {e}", path.display()))?;
        let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
            || text.trim_start().starts_with("all:")
            || text.trim_start().starts_with("---");
        let raw = if yaml {
            parse_yaml(&text)?
        } else {
            parse_ini(&text)?
        };
        raw.resolve()
            .map_err(|e| format!("inventory {}: {e}", path.display()))
    }

    /// Every host's name, control planes first.
    pub fn host_names(&self) -> Vec<String> {
        self.all_hosts().map(|h| h.name.clone()).collect()
    }

    pub fn all_hosts(&self) -> impl Iterator<Item = &Host> {
        self.control_plane.iter().chain(&self.workers)
    }

    pub fn var(&self, key: &str) -> Option<String> {
        match self.vars.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// Groups as written: members (in order), group vars, children; host vars by host.
#[derive(Debug, Default)]
struct Raw {
    groups: Vec<(String, Vec<String>)>,
    group_vars: Map<String, Value>,
    children: Vec<(String, Vec<String>)>,
    host_vars: Map<String, Value>,
}

impl Raw {
    fn members(&self, group: &str, depth: usize) -> Vec<String> {
        let mut out: Vec<String> = self
            .groups
            .iter()
            .filter(|(g, _)| g == group)
            .flat_map(|(_, m)| m.clone())
            .collect();
        if depth < 8 {
            for (_, kids) in self.children.iter().filter(|(g, _)| g == group) {
                for kid in kids {
                    out.extend(self.members(kid, depth + 1));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|h| seen.insert(h.clone()));
        out
    }

    fn resolve(self) -> Result<Inventory, String> {
        let all_vars = self
            .group_vars
            .get("all")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let host = |name: &String, groups: &[&str]| -> Result<Host, String> {
            let mut vars = all_vars.clone();
            for g in groups {
                if let Some(Value::Object(gv)) = self.group_vars.get(*g) {
                    vars.extend(gv.clone());
                }
            }
            if let Some(Value::Object(hv)) = self.host_vars.get(name) {
                vars.extend(hv.clone());
            }
            let node = match vars.get("node_name") {
                None | Some(Value::Null) => name.clone(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            let node_name = NodeName::new(&node).map_err(|e| format!("host {name}: node_name {e}"))?;
            let host = Host {
                name: name.clone(),
                vars,
                node_name,
            };
            if let (Some(given), None) = (host.var("take_out"), host.take_out()) {
                return Err(format!(
                    "host {name}: take_out is {given:?}; expected cordon or drain"
                ));
            }
            if let (Some(given), None) = (host.vars.get("units"), host.units()) {
                return Err(format!(
                    "host {name}: units is {given}; expected unit names (a list, or comma-separated)"
                ));
            }
            Ok(host)
        };
        let pick = |names: &[&'static str]| -> Result<Vec<Host>, String> {
            let mut members: Vec<String> = Vec::new();
            for n in names {
                for m in self.members(n, 0) {
                    if !members.contains(&m) {
                        members.push(m);
                    }
                }
            }
            members.iter().map(|m| host(m, names)).collect()
        };
        let control_plane = pick(&["control_plane", "masters"])?;
        let workers: Vec<Host> = pick(&["workers", "nodes"])?
            .into_iter()
            .filter(|w| !control_plane.iter().any(|c| c.name == w.name))
            .collect();
        if control_plane.is_empty() {
            return Err("no hosts in group control_plane (or masters)".into());
        }
        Ok(Inventory {
            control_plane,
            workers,
            vars: all_vars,
        })
    }
}

/// Parses `key=value key2='quoted value'` as Ansible's INI does (values stay strings).
fn parse_assignments(text: &str) -> Result<Map<String, Value>, String> {
    let mut vars = Map::new();
    for word in split_words(text)? {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {word:?}"))?;
        vars.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(vars)
}

/// Splits on whitespace, honouring single and double quotes (which are removed).
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in {text:?}"));
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

fn parse_ini(text: &str) -> Result<Raw, String> {
    let mut raw = Raw::default();
    let mut section = ("ungrouped".to_string(), "hosts".to_string());
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", n + 1);
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = match header.split_once(':') {
                Some((group, kind)) => (group.to_string(), kind.to_string()),
                None => (header.to_string(), "hosts".to_string()),
            };
            continue;
        }
        match section.1.as_str() {
            "vars" => {
                let (key, value) = line
                    .split_once('=')
                    .ok_or_else(|| at(format!("expected key=value, got {line:?}")))?;
                let value = split_words(value.trim()).map_err(at)?.join(" ");
                let entry = raw
                    .group_vars
                    .entry(section.0.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = entry {
                    map.insert(key.trim().to_string(), Value::String(value));
                }
            }
            "children" => {
                let kid = line.split_whitespace().next().unwrap_or_default().to_string();
                match raw.children.iter_mut().find(|(g, _)| *g == section.0) {
                    Some((_, kids)) => kids.push(kid),
                    None => raw.children.push((section.0.clone(), vec![kid])),
                }
            }
            _ => {
                let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                let vars = parse_assignments(rest).map_err(at)?;
                let entry = raw
                    .host_vars
                    .entry(name.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = entry {
                    map.extend(vars);
                }
                match raw.groups.iter_mut().find(|(g, _)| *g == section.0) {
                    Some((_, members)) => members.push(name.to_string()),
                    None => raw.groups.push((section.0.clone(), vec![name.to_string()])),
                }
            }
        }
    }
    Ok(raw)
}

fn parse_yaml(text: &str) -> Result<Raw, String> {
    let doc: Value = serde_norway::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let mut raw = Raw::default();
    let root = doc
        .as_object()
        .ok_or("the YAML inventory must be a mapping of groups")?;
    for (group, body) in root {
        walk_yaml(&mut raw, group, body, 0)?;
    }
    Ok(raw)
}

fn walk_yaml(raw: &mut Raw, group: &str, body: &Value, depth: usize) -> Result<(), String> {
    if depth > 8 {
        return Err("groups nested too deeply".into());
    }
    let Some(body) = body.as_object() else {
        return Ok(());
    };
    if let Some(Value::Object(vars)) = body.get("vars") {
        raw.group_vars
            .insert(group.to_string(), Value::Object(vars.clone()));
    }
    if let Some(Value::Object(hosts)) = body.get("hosts") {
        let mut members = Vec::new();
        for (name, vars) in hosts {
            members.push(name.clone());
            if let Value::Object(v) = vars {
                let entry = raw
                    .host_vars
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = entry {
                    map.extend(v.clone());
                }
            }
        }
        raw.groups.push((group.to_string(), members));
    }
    if let Some(Value::Object(children)) = body.get("children") {
        raw.children
            .push((group.to_string(), children.keys().cloned().collect()));
        for (child, child_body) in children {
            walk_yaml(raw, child, child_body, depth + 1)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed-seed fuzz pass over both parsers: text built from the inventory's own tokens and
    /// hostile ones. Every input must give an inventory or an error, never a panic or a hang.
    #[test]
    fn random_inventories_never_panic() {
        const TOKENS: &[&str] = &[
            "[",
            "]",
            "control_plane",
            "masters",
            "workers",
            "nodes",
            "all",
            ":vars",
            ":children",
            "=",
            "'",
            "\"",
            " ",
            "  ",
            "\t",
            "\n",
            "\n",
            "\n",
            "ansible_host",
            "node_name",
            "-oProxyCommand=x",
            "\0",
            "é",
            "all:",
            "hosts:",
            "vars:",
            "children:",
            "- ",
            "{",
            "}",
            "&a",
            "*a",
            "!!str",
            "---",
            "#",
            ";",
            "w1",
            "cp1",
            "~",
            "null",
            "[]",
            "{}",
            "1e999",
            "\u{202e}",
            "\r",
        ];
        // The modules' fuzz generator, with a fixed seed.
        let mut rng = module_kit::testkit::Rng::new(17);
        let mut next = move || rng.next_u64();
        let (mut parsed, mut refused) = (0, 0);
        for case in 0..3000 {
            // A valid inventory of either form with a few random insertions and deletions.
            let mut text: Vec<char> = if case % 2 == 0 { INI } else { YAML }.chars().collect();
            for _ in 0..next() % 4 {
                let at = (next() % (text.len() as u64 + 1)) as usize;
                if next() % 3 == 0 {
                    let end = (at + (next() % 12) as usize).min(text.len());
                    text.drain(at..end);
                } else {
                    let token = TOKENS[(next() % TOKENS.len() as u64) as usize];
                    text.splice(at..at, token.chars());
                }
            }
            let text: String = text.into_iter().collect();
            for raw in [parse_ini(&text), parse_yaml(&text)] {
                match raw.and_then(Raw::resolve) {
                    Ok(_) => parsed += 1,
                    Err(_) => refused += 1,
                }
            }
        }
        // Both outcomes occur: the generator reaches past the first error.
        assert!(parsed > 0 && refused > 0, "parsed {parsed}, refused {refused}");
        // Deep nesting is bounded, not a stack overflow.
        let deep = format!(
            "all:\n{}",
            (0..2000)
                .map(|i| format!("{}x{i}:\n", " ".repeat(i % 200)))
                .collect::<String>()
        );
        let _ = parse_yaml(&deep).and_then(Raw::resolve);
        let nested = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let _ = parse_yaml(&nested).and_then(Raw::resolve);
    }

    const INI: &str = "# lab\n[masters]\nm1 ansible_host=10.0.0.1 node_name=m1.example\nm2 ansible_host=10.0.0.2\n\n\
        [nodes]\nw1 ansible_host=10.0.0.3 ansible_port=2222\n\n[all:vars]\nansible_user=root\n\
        ansible_ssh_common_args='-o StrictHostKeyChecking=no -o LogLevel=ERROR'\n[nodes:vars]\ncontainer_runtime=containerd\n";

    const YAML: &str = "all:\n  vars:\n    ansible_user: root\n  children:\n    control_plane:\n      hosts:\n        \
        m1:\n          ansible_host: 10.0.0.1\n          node_name: m1.example\n        m2:\n          ansible_host: 10.0.0.2\n    \
        workers:\n      vars:\n        container_runtime: containerd\n      hosts:\n        w1:\n          ansible_host: 10.0.0.3\n          ansible_port: 2222\n";

    #[test]
    fn ini_and_yaml_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let (ini, yaml) = (dir.path().join("hosts.ini"), dir.path().join("hosts.yml"));
        std::fs::write(&ini, INI).unwrap();
        std::fs::write(&yaml, YAML).unwrap();
        for path in [ini, yaml] {
            let inv = Inventory::load(&path).unwrap();
            let names: Vec<&str> = inv.all_hosts().map(|h| h.name.as_str()).collect();
            assert_eq!(names, ["m1", "m2", "w1"], "{path:?}");
            assert_eq!(inv.control_plane[0].node_name.as_str(), "m1.example");
            assert_eq!(inv.control_plane[1].node_name.as_str(), "m2");
            assert_eq!(inv.workers[0].var("ansible_port").as_deref(), Some("2222"));
            assert_eq!(
                inv.workers[0].var("container_runtime").as_deref(),
                Some("containerd")
            );
            assert_eq!(inv.control_plane[0].var("ansible_user").as_deref(), Some("root"));
            assert_eq!(inv.control_plane[0].var("container_runtime"), None);
        }
    }

    #[test]
    fn quoted_ssh_args_and_errors() {
        assert_eq!(split_words("-o 'A B' \"C\" d").unwrap(), ["-o", "A B", "C", "d"]);
        assert!(split_words("'open").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.ini");
        std::fs::write(&path, "[workers]\nw1\n").unwrap();
        assert!(Inventory::load(&path).unwrap_err().contains("control_plane"));
    }

    #[test]
    fn units_and_take_out_override_the_era_per_host_and_nonsense_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("hosts.ini");
        std::fs::write(
            &ini,
            "[control_plane]\ncp1 take_out=cordon units=keepalived,kubelet,containerd\n[workers]\nw1\n",
        )
        .unwrap();
        let inv = Inventory::load(&ini).unwrap();
        assert_eq!(inv.control_plane[0].take_out(), Some(TakeOut::Cordon));
        assert_eq!(
            inv.control_plane[0].units().unwrap(),
            ["keepalived", "kubelet", "containerd"]
        );
        assert_eq!((inv.workers[0].take_out(), inv.workers[0].units()), (None, None));
        let yaml = dir.path().join("hosts.yml");
        std::fs::write(
            &yaml,
            "all:\n  children:\n    control_plane:\n      hosts:\n        cp1:\n          units: [kubelet, crio]\n          take_out: drain\n",
        )
        .unwrap();
        let inv = Inventory::load(&yaml).unwrap();
        assert_eq!(inv.control_plane[0].units().unwrap(), ["kubelet", "crio"]);
        assert_eq!(inv.control_plane[0].take_out(), Some(TakeOut::Drain));
        std::fs::write(&ini, "[control_plane]\ncp1 take_out=evict\n").unwrap();
        let err = Inventory::load(&ini).unwrap_err();
        assert!(
            err.contains("host cp1: take_out") && err.contains("cordon or drain"),
            "{err}"
        );
    }
}
