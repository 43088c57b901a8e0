//! `kup module` (the modules kup carries, each with what it does) and `kup module describe NAME`
//! (its arguments: name, type, required, default, what it is), read from each module's own sidecar
//! documentation: the `NAME.yml` beside its source that Ansible reads (scripts/build puts a copy
//! beside each binary in dist/), built into the module (`Module::DOCS`) and so into kup. Nothing
//! here is written twice, so the description cannot drift from the module. `--json` gives the same
//! for scripts, and [`eras_json`] the procedure per era (`kup eras --json`).

use crate::modules::{self, ModuleInfo};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// One argument of a module.
#[derive(Debug, Clone, PartialEq)]
pub struct Opt {
    pub name: String,
    pub kind: String,
    pub required: bool,
    /// As the documentation gives it (`-` when it gives none).
    pub default: String,
    /// The same as the documentation's value (null when it gives none).
    pub default_value: Value,
    pub description: String,
}

/// What a module's documentation says.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub short: String,
    pub options: Vec<Opt>,
}

/// Ansible's markup, as plain text: `C(x)`, `O(x)`, `V(x)`, `I(x)`, `B(x)`, `M(x)`, `U(x)`,
/// `RV(x)` -> `x`; `L(text,url)` -> `text (url)`.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for tag in ["RV(", "C(", "O(", "V(", "I(", "B(", "M(", "U(", "L("] {
            let boundary = out.chars().last().is_none_or(|c| !c.is_ascii_alphanumeric());
            if let (true, Some(inner)) = (boundary, rest.strip_prefix(tag)) {
                if let Some(end) = inner.find(')') {
                    let body = &inner[..end];
                    if tag == "L(" {
                        match body.split_once(',') {
                            Some((t, u)) => out.push_str(&format!("{} ({})", t.trim(), u.trim())),
                            None => out.push_str(body),
                        }
                    } else {
                        out.push_str(body);
                    }
                    rest = &inner[end + 1..];
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A description: a string, or a list of paragraphs (joined).
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => plain(s.trim()),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(" "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Parses a module's sidecar documentation (its `DOCUMENTATION` part).
pub fn parse(docs: &str) -> Result<Doc, String> {
    let all: Value = serde_norway::from_str(docs).map_err(|e| format!("its documentation: {e}"))?;
    let doc = &all["DOCUMENTATION"];
    if !doc.is_object() {
        return Err("its documentation has no DOCUMENTATION".into());
    }
    let mut options = Vec::new();
    if let Some(map) = doc["options"].as_object() {
        for (name, o) in map {
            let mut description = text_of(&o["description"]);
            if let Some(choices) = o["choices"].as_array().filter(|c| !c.is_empty()) {
                description.push_str(&format!(" (one of: {})", shown(&Value::Array(choices.clone()))));
            }
            if let Some(aliases) = o["aliases"].as_array().filter(|a| !a.is_empty()) {
                description.push_str(&format!(" (also: {})", shown(&Value::Array(aliases.clone()))));
            }
            let kind = match (o["type"].as_str(), o["elements"].as_str()) {
                (Some(t), Some(e)) => format!("{t} of {e}"),
                (Some(t), None) => t.to_string(),
                (None, _) => "str".to_string(),
            };
            options.push(Opt {
                name: name.clone(),
                kind,
                required: o["required"] == true,
                default: if o["default"].is_null() {
                    "-".into()
                } else {
                    shown(&o["default"])
                },
                default_value: o["default"].clone(),
                description,
            });
        }
    }
    Ok(Doc {
        short: text_of(&doc["short_description"]),
        options,
    })
}

fn place(m: &ModuleInfo) -> &'static str {
    if m.api {
        "api"
    } else {
        "host"
    }
}

/// `kup module`: one module a line, where it runs and what it does.
pub fn list_text() -> String {
    let width = modules::MODULES.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let mut out = format!("{:<width$}  {:<4}  WHAT IT DOES\n", "MODULE", "RUNS");
    for m in modules::MODULES {
        let short = parse(m.docs)
            .map(|d| d.short)
            .unwrap_or_else(|e| format!("({e})"));
        out.push_str(&format!("{:<width$}  {:<4}  {short}\n", m.name, place(m)));
    }
    out.push_str(
        "\nRUNS: host, on the host it upgrades; api, against the API server (here with the inventory's \
         kubeconfig, else on the first control plane).\n`kup module describe NAME` describes a module's \
         arguments; `kup module NAME [ARGS.json]` runs it (JSON arguments on stdin without ARGS).\n",
    );
    out
}

/// `kup module describe NAME`: what the module does, then its arguments, one a row; descriptions
/// wrapped at `width` columns between words (0: kept whole).
pub fn describe_text(name: &str, width: usize) -> Result<String, String> {
    let Some(m) = modules::info(name) else {
        let names: Vec<&str> = modules::MODULES.iter().map(|m| m.name).collect();
        return Err(format!("no module {name:?}; kup has: {}", names.join(", ")));
    };
    let doc = parse(m.docs).map_err(|e| format!("module {name}: {e}"))?;
    let mut out = format!(
        "{name}: {}\nruns: {} (links {})\n\n",
        doc.short,
        place(m),
        m.links.name()
    );
    let name_w = doc.options.iter().map(|o| o.name.len()).max().unwrap_or(0).max(8);
    let kind_w = doc.options.iter().map(|o| o.kind.len()).max().unwrap_or(0).max(4);
    let default_w = doc
        .options
        .iter()
        .map(|o| o.default.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(7, 24);
    out.push_str(&format!(
        "{:<name_w$}  {:<kind_w$}  {:<8}  {:<default_w$}  DESCRIPTION\n",
        "ARGUMENT", "TYPE", "REQUIRED", "DEFAULT"
    ));
    let column = name_w + kind_w + default_w + 16;
    for o in &doc.options {
        let row = format!(
            "{:<name_w$}  {:<kind_w$}  {:<8}  {:<default_w$}  {}",
            o.name,
            o.kind,
            if o.required { "yes" } else { "no" },
            o.default,
            o.description
        );
        for line in crate::report::wrap(&row, width, column) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    let source = format!(
        "(from {name}.yml, the module's Ansible documentation: `ansible-doc` shows the same; the result's \
         fields are under RETURN there)"
    );
    out.push('\n');
    for line in crate::report::wrap(&source, width, 0) {
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// `kup module describe NAME --json`: what [`describe_text`] shows, as one object.
pub fn describe_json(name: &str) -> Result<Value, String> {
    let Some(m) = modules::info(name) else {
        let names: Vec<&str> = modules::MODULES.iter().map(|m| m.name).collect();
        return Err(format!("no module {name:?}; kup has: {}", names.join(", ")));
    };
    let doc = parse(m.docs).map_err(|e| format!("module {name}: {e}"))?;
    let options: Vec<Value> = doc
        .options
        .iter()
        .map(|o| {
            json!({"name": o.name, "type": o.kind, "required": o.required, "default": o.default_value,
                   "description": o.description})
        })
        .collect();
    Ok(
        json!({"name": name, "short_description": doc.short, "runs": place(m),
              "links": m.links.name(), "options": options}),
    )
}

/// `kup eras --json`: every era of the procedure, oldest first, with the fields `kup eras` (and
/// playbooks/vars/eras.yml) gives each.
pub fn eras_json() -> Value {
    json!({"eras": kube_eras::ERAS})
}

pub fn print_list() -> ExitCode {
    match std::io::stdout().lock().write_all(list_text().as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// `kup module describe NAME [--json]`: exit 2 without a known NAME.
pub fn print_describe(args: &[OsString]) -> ExitCode {
    let json = args.iter().any(|a| a == "--json");
    let rest: Vec<&OsString> = args.iter().filter(|a| *a != "--json").collect();
    let [name] = rest[..] else {
        let _ = writeln!(
            std::io::stderr(),
            "kup: usage: kup module describe NAME [--json] (`kup module` lists them)"
        );
        return ExitCode::from(2);
    };
    if json {
        let text = describe_json(&name.to_string_lossy()).map(|v| v.to_string() + "\n");
        return match text {
            Ok(text) => match std::io::stdout().lock().write_all(text.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            },
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "kup: {e}");
                ExitCode::from(2)
            }
        };
    }
    let stdout = std::io::stdout();
    let width = if stdout.is_terminal() {
        crate::report::terminal_width(&stdout).unwrap_or(0)
    } else {
        0
    };
    match describe_text(&name.to_string_lossy(), width) {
        Ok(text) => match stdout.lock().write_all(text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "kup: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_module_is_listed_with_what_it_does_from_its_own_docs() {
        let text = list_text();
        for m in modules::MODULES {
            let doc = parse(m.docs).unwrap();
            assert!(!doc.short.is_empty(), "{}", m.name);
            assert!(!doc.options.is_empty(), "{}", m.name);
            let line = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some(m.name))
                .unwrap();
            assert!(line.ends_with(&doc.short), "{line}");
        }
        assert!(
            text.contains("Cordon, drain or uncordon a Kubernetes node"),
            "{text}"
        );
    }

    #[test]
    fn describe_gives_each_argument_its_type_default_and_whether_required() {
        let doc = parse(modules::info("node_drain").unwrap().docs).unwrap();
        let opt = |n: &str| doc.options.iter().find(|o| o.name == n).unwrap().clone();
        let name = opt("name");
        assert_eq!(
            (name.kind.as_str(), name.required, name.default.as_str()),
            ("str", true, "-")
        );
        let state = opt("state");
        assert_eq!((state.default.as_str(), state.required), ("drain", false));
        assert!(
            state.description.contains("one of: cordon, drain, uncordon"),
            "{state:?}"
        );
        assert!(
            !state.description.contains("C("),
            "Ansible markup shown: {state:?}"
        );
        assert_eq!(opt("timeout").default, "600");
        assert!(opt("delete_emptydir_data")
            .description
            .contains("also: delete_local_data"));

        let text = describe_text("node_drain", 0).unwrap();
        assert!(
            text.starts_with("node_drain: Cordon, drain or uncordon"),
            "{text}"
        );
        let row = text.lines().find(|l| l.starts_with("timeout ")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[..4], ["timeout", "int", "no", "600"], "{row}");
        // Wrapped between words, never cut.
        let narrow = describe_text("node_drain", 100).unwrap();
        assert!(narrow
            .lines()
            .all(|l| l.chars().count() <= 100 || !l.trim().contains(' ')));
        let words = |t: &str| t.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(words(&narrow), words(&text));
        assert!(describe_text("nosuch", 0)
            .unwrap_err()
            .contains("kup has: kubeadm_download"));
    }

    #[test]
    fn describe_json_gives_each_argument_with_its_typed_default() {
        let v = describe_json("node_drain").unwrap();
        assert_eq!(v["name"], "node_drain");
        assert_eq!(v["runs"], "api");
        assert!(
            v["short_description"]
                .as_str()
                .unwrap()
                .starts_with("Cordon, drain or uncordon"),
            "{v}"
        );
        let opt = |n: &str| {
            v["options"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == n)
                .unwrap()
                .clone()
        };
        assert_eq!(
            opt("timeout"),
            json!({"name": "timeout", "type": "int", "required": false, "default": 600,
                   "description": opt("timeout")["description"]})
        );
        assert_eq!(
            (
                opt("name")["required"].as_bool(),
                opt("name")["default"].is_null()
            ),
            (Some(true), true)
        );
        assert_eq!(opt("state")["default"], "drain");
        // The same arguments as the text.
        let text = describe_text("node_drain", 0).unwrap();
        for o in v["options"].as_array().unwrap() {
            let name = o["name"].as_str().unwrap();
            assert!(text.lines().any(|l| l.starts_with(&format!("{name} "))), "{name}");
        }
        assert!(describe_json("nosuch").unwrap_err().contains("kup has:"));
    }

    #[test]
    fn eras_json_has_every_era_with_the_yaml_rows_fields() {
        let v = eras_json();
        let eras = v["eras"].as_array().unwrap();
        assert_eq!(eras.len(), kube_eras::ERAS.len());
        assert_eq!(eras[0]["minor"], 8);
        assert_eq!(eras[0]["take_out_workers"], "drain");
        assert_eq!(eras.last().unwrap()["addons_at_last_control_plane"], true);
        // Every field the YAML gives a row.
        let yaml = kube_eras::to_yaml();
        for key in eras[0].as_object().unwrap().keys() {
            assert!(yaml.contains(&format!("{key}:")), "{key} is not in the YAML");
        }
        let yaml_keys = yaml
            .lines()
            .filter(|l| (l.starts_with("    ") && !l.starts_with("      ")) || l.starts_with("  - "))
            .filter_map(|l| l.trim_start_matches("  - ").trim().split_once(':'))
            .map(|(k, _)| k.to_string())
            .collect::<std::collections::BTreeSet<_>>();
        for key in yaml_keys {
            assert!(eras[0].get(&key).is_some(), "{key} missing from the JSON");
        }
    }

    #[test]
    fn ansible_markup_reads_as_plain_text() {
        assert_eq!(
            plain("C(kubectl drain) with O(force=true), RV(evicted); L(docs,https://k8s.io) ABC(x)"),
            "kubectl drain with force=true, evicted; docs (https://k8s.io) ABC(x)"
        );
    }
}
