//! The repository file as text: which form it is (apt one-line `.list`, apt deb822 `.sources`,
//! yum/dnf `.repo`), the Kubernetes repositories it defines, and the same text pointed at another
//! minor. Pure: text in, text out, so every form is tested without a node.
//!
//! pkgs.k8s.io has one repository per minor (`https://pkgs.k8s.io/core:/stable:/v1.31/deb/`), so
//! switching minors changes the `v1.X` of that path segment and nothing else: not the base URL (a
//! mirror, `file:`), not the options, comments or other lines.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// apt's one-line `deb [options] URI suite` format.
    List,
    /// apt's deb822 `.sources` stanzas.
    Deb822,
    /// A yum/dnf `.repo` (INI) file.
    Repo,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::List => "list",
            Format::Deb822 => "deb822",
            Format::Repo => "repo",
        }
    }

    /// Read by apt (rather than yum/dnf).
    pub fn apt(self) -> bool {
        !matches!(self, Format::Repo)
    }

    /// From the file name as apt and dnf go by it, else from what the text looks like.
    pub fn of(path: &Path, text: &str) -> Option<Format> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("list") => return Some(Format::List),
            Some("sources") => return Some(Format::Deb822),
            Some("repo") => return Some(Format::Repo),
            _ => {}
        }
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))?;
        let word = first.split_whitespace().next().unwrap_or_default();
        if first.starts_with('[') {
            Some(Format::Repo)
        } else if word == "deb" || word == "deb-src" {
            Some(Format::List)
        } else if first.contains(':') {
            Some(Format::Deb822)
        } else {
            None
        }
    }

    /// What a Kubernetes repository looks like in this form, for a refusal.
    pub fn expected(self) -> &'static str {
        match self {
            Format::List => {
                "a line such as `deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] \
                 https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /`"
            }
            Format::Deb822 => "a stanza with `URIs: https://pkgs.k8s.io/core:/stable:/v1.31/deb/`",
            Format::Repo => "a section with `baseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/`",
        }
    }
}

/// The path segments naming a minor's repository: pkgs.k8s.io's, and the one mirrors that drop the
/// colons use (`https://mirrors.aliyun.com/kubernetes-new/core/stable/v1.31/rpm/`).
const CHANNELS: [&str; 4] = [
    "/core:/stable:/v",
    "/core:/prerelease:/v",
    "/core/stable/v",
    "/core/prerelease/v",
];

/// The legacy repositories (apt.kubernetes.io, packages.cloud.google.com, and their mirrors'
/// suite and repository names): one repository for every version, frozen since 2023-09.
const LEGACY: [&str; 6] = [
    "apt.kubernetes.io",
    "yum.kubernetes.io",
    "packages.cloud.google.com/apt",
    "packages.cloud.google.com/yum",
    "kubernetes-xenial",
    "kubernetes-el7",
];

/// Whether `text` (a URL, a suite) names a legacy repository.
pub fn legacy(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    LEGACY.iter().any(|l| text.contains(l))
}

/// `text` with every per-minor path segment (`/core:/stable:/v1.X`, followed by `/` or the end)
/// pointed at minor `to`, and the minors they named.
pub fn retarget(text: &str, to: u32) -> (String, Vec<u32>) {
    let mut out = String::with_capacity(text.len());
    let mut minors = Vec::new();
    let mut rest = text;
    loop {
        let next = CHANNELS
            .iter()
            .filter_map(|c| rest.find(c).map(|at| (at, at + c.len())))
            .min();
        let Some((_, after)) = next else {
            out.push_str(rest);
            return (out, minors);
        };
        let (head, tail) = rest.split_at(after);
        out.push_str(head);
        rest = tail;
        let Some(version) = rest.strip_prefix("1.") else {
            continue;
        };
        let digits = version.len() - version.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, beyond) = version.split_at(digits);
        if !(1..=4).contains(&digits) || !(beyond.is_empty() || beyond.starts_with('/')) {
            continue;
        }
        if let Ok(minor) = number.parse::<u32>() {
            minors.push(minor);
            out.push_str(&format!("1.{to}"));
            rest = beyond;
        }
    }
}

/// What a repository file defines, and its text pointed at the target minor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The whole file, each per-minor URL pointed at the target; everything else as it was.
    pub text: String,
    /// The minors the per-minor URLs named, sorted, once each.
    pub minors: Vec<u32>,
    /// How many entries (lines, stanzas, sections) name a per-minor repository.
    pub entries: usize,
    /// Some per-minor URL is on pkgs.k8s.io itself (not a mirror).
    pub upstream: bool,
    /// Legacy repository URLs and suites, left as they are.
    pub legacy: Vec<String>,
    /// apt: each entry's keyring (its `signed-by`), `None` where it names none or not as one path.
    pub keyrings: Vec<Option<String>>,
    /// yum/dnf: the sections (repository ids) with a per-minor URL.
    pub repo_ids: Vec<String>,
}

impl Found {
    fn note(&mut self, before: &str, minors: Vec<u32>) -> bool {
        if minors.is_empty() {
            return false;
        }
        self.upstream |= before.to_ascii_lowercase().contains("pkgs.k8s.io/core");
        self.minors.extend(minors);
        true
    }

    fn finish(mut self) -> Found {
        self.minors.sort_unstable();
        self.minors.dedup();
        self
    }
}

/// Reads `text` as `format` and points its per-minor repositories at minor `to`.
pub fn scan(format: Format, text: &str, to: u32) -> Found {
    match format {
        Format::List => scan_list(text, to),
        Format::Deb822 => scan_deb822(text, to),
        Format::Repo => scan_repo(text, to),
    }
}

/// Each line with its line ending split off: `("deb ... /", "\n")`.
fn lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_inclusive('\n').map(|line| {
        let body = line.trim_end_matches(['\n', '\r']);
        (body, &line[body.len()..])
    })
}

/// One `deb`/`deb-src` line: where its URI is, its options and its suite.
struct ListEntry<'a> {
    uri: std::ops::Range<usize>,
    options: &'a str,
    suite: &'a str,
}

/// Parses a one-line source as apt does (from `#` on is a comment); `None` for anything else.
fn list_entry(line: &str) -> Option<ListEntry<'_>> {
    let content = line.split('#').next().unwrap_or_default();
    let mut at = content.len() - content.trim_start().len();
    let word_end = |from: usize| {
        content[from..]
            .find(char::is_whitespace)
            .map_or(content.len(), |n| from + n)
    };
    let skip_space = |from: usize| content.len() - content[from..].trim_start().len();
    let end = word_end(at);
    if !matches!(&content[at..end], "deb" | "deb-src") {
        return None;
    }
    at = skip_space(end);
    let mut options = "";
    if content[at..].starts_with('[') {
        let close = content[at..].find(']')? + at;
        options = &content[at + 1..close];
        at = skip_space(close + 1);
    }
    let end = word_end(at);
    if end == at {
        return None;
    }
    let uri = at..end;
    let suite_at = skip_space(end);
    let suite = &content[suite_at..word_end(suite_at)];
    Some(ListEntry { uri, options, suite })
}

/// The one keyring an apt `signed-by` value names, if it names exactly one by absolute path
/// (it may also list fingerprints, or several keyrings).
fn keyring(value: &str) -> Option<String> {
    let value = value.trim();
    (value.starts_with('/') && !value.contains([',', ' ', '\t'])).then(|| value.to_string())
}

fn scan_list(text: &str, to: u32) -> Found {
    let mut found = Found::default();
    for (body, ending) in lines(text) {
        let Some(entry) = list_entry(body) else {
            found.text.push_str(body);
            found.text.push_str(ending);
            continue;
        };
        let uri = &body[entry.uri.clone()];
        let (retargeted, minors) = retarget(uri, to);
        if found.note(uri, minors) {
            found.entries += 1;
            let signed_by = entry.options.split_whitespace().find_map(|o| {
                let (key, value) = o.split_once('=')?;
                key.eq_ignore_ascii_case("signed-by").then_some(value)
            });
            found.keyrings.push(signed_by.and_then(keyring));
        } else if legacy(uri) || legacy(entry.suite) {
            found.legacy.push(format!("{uri} {}", entry.suite));
        }
        found.text.push_str(&body[..entry.uri.start]);
        found.text.push_str(&retargeted);
        found.text.push_str(&body[entry.uri.end..]);
        found.text.push_str(ending);
    }
    found.finish()
}

/// One deb822 stanza as it is read: its per-minor URIs, legacy ones, its keyring.
#[derive(Default)]
struct Stanza {
    per_minor: bool,
    legacy: Vec<String>,
    signed_by: Option<String>,
    /// `Signed-By` continues on further lines: an embedded key, not a path.
    signed_by_inline: bool,
}

fn scan_deb822(text: &str, to: u32) -> Found {
    let mut found = Found::default();
    let mut stanza = Stanza::default();
    // The field the current line continues (lowercase).
    let mut field = String::new();
    let end_stanza = |found: &mut Found, stanza: &mut Stanza| {
        let done = std::mem::take(stanza);
        if done.per_minor {
            found.entries += 1;
            let path = done.signed_by.filter(|_| !done.signed_by_inline);
            found.keyrings.push(path.as_deref().and_then(keyring));
        } else {
            found.legacy.extend(done.legacy);
        }
    };
    for (body, ending) in lines(text) {
        let value_at;
        if body.trim().is_empty() {
            end_stanza(&mut found, &mut stanza);
            field.clear();
            value_at = None;
        } else if body.starts_with('#') {
            value_at = None;
        } else if body.starts_with([' ', '\t']) {
            if field == "signed-by" {
                stanza.signed_by_inline = true;
            }
            value_at = Some(0);
        } else if let Some((name, value)) = body.split_once(':') {
            field = name.trim().to_ascii_lowercase();
            if field == "signed-by" {
                stanza.signed_by = Some(value.trim().to_string());
            }
            value_at = Some(name.len() + 1);
        } else {
            field.clear();
            value_at = None;
        }
        match value_at {
            Some(at) if field == "uris" || field == "suites" => {
                let value = &body[at..];
                let (retargeted, minors) = if field == "uris" {
                    retarget(value, to)
                } else {
                    (value.to_string(), Vec::new())
                };
                for word in value.split_whitespace() {
                    if legacy(word) && retarget(word, to).1.is_empty() {
                        stanza.legacy.push(word.to_string());
                    }
                }
                stanza.per_minor |= found.note(value, minors);
                found.text.push_str(&body[..at]);
                found.text.push_str(&retargeted);
            }
            _ => found.text.push_str(body),
        }
        found.text.push_str(ending);
    }
    end_stanza(&mut found, &mut stanza);
    found.finish()
}

fn scan_repo(text: &str, to: u32) -> Found {
    let mut found = Found::default();
    let mut section = String::new();
    let mut key = String::new();
    for (body, ending) in lines(text) {
        let trimmed = body.trim_start();
        let mut value_at = None;
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            key.clear();
        } else if body.starts_with([' ', '\t']) {
            // A continuation of the key above (a list of URLs).
            value_at = Some(0);
        } else if trimmed.starts_with('[') {
            section = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            key.clear();
        } else if let Some((name, _)) = body.split_once('=') {
            key = name.trim().to_ascii_lowercase();
            value_at = Some(name.len() + 1);
        } else {
            key.clear();
        }
        match value_at {
            Some(at) if key == "baseurl" || key == "gpgkey" => {
                let value = &body[at..];
                let (retargeted, minors) = retarget(value, to);
                if found.note(value, minors) {
                    if !found.repo_ids.contains(&section) {
                        found.entries += 1;
                        found.repo_ids.push(section.clone());
                    }
                } else if key == "baseurl" && legacy(value) {
                    found.legacy.push(value.trim().to_string());
                }
                found.text.push_str(&body[..at]);
                found.text.push_str(&retargeted);
            }
            _ => found.text.push_str(body),
        }
        found.text.push_str(ending);
    }
    found.repo_ids.retain(|id| !id.is_empty());
    found.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn only_the_minor_of_a_per_minor_segment_changes() {
        assert_eq!(
            retarget("https://pkgs.k8s.io/core:/stable:/v1.30/deb/", 31),
            (
                "https://pkgs.k8s.io/core:/stable:/v1.31/deb/".to_string(),
                vec![30]
            )
        );
        assert_eq!(
            retarget("file:/srv/k8s/core:/prerelease:/v1.29", 31),
            ("file:/srv/k8s/core:/prerelease:/v1.31".to_string(), vec![29])
        );
        assert_eq!(
            retarget(
                "https://mirrors.aliyun.com/kubernetes-new/core/stable/v1.28/rpm/",
                31
            ),
            (
                "https://mirrors.aliyun.com/kubernetes-new/core/stable/v1.31/rpm/".to_string(),
                vec![28]
            )
        );
        // Not a minor's segment: left as it is.
        for text in [
            "https://pkgs.k8s.io/addons:/cri-o:/stable:/v1.30/deb/",
            "https://pkgs.k8s.io/core:/stable:/v1.30.2/deb/",
            "https://pkgs.k8s.io/core:/stable:/v2.0/deb/",
            "https://pkgs.k8s.io/core:/stable:/v1./deb/",
            "https://pkgs.k8s.io/core:/stable:/v1.30x/deb/",
            "https://apt.kubernetes.io/",
        ] {
            assert_eq!(retarget(text, 31), (text.to_string(), vec![]), "{text}");
        }
        // Several in one value (a list of gpgkey URLs).
        let (text, minors) = retarget(
            "https://pkgs.k8s.io/core:/stable:/v1.29/rpm/a.key,https://pkgs.k8s.io/core:/stable:/v1.30/rpm/b.key",
            31,
        );
        assert_eq!(
            text,
            "https://pkgs.k8s.io/core:/stable:/v1.31/rpm/a.key,https://pkgs.k8s.io/core:/stable:/v1.31/rpm/b.key"
        );
        assert_eq!(minors, [29, 30]);
    }

    #[test]
    fn the_form_comes_from_the_name_then_the_text() {
        let of = |p: &str, t: &str| Format::of(Path::new(p), t);
        assert_eq!(
            of("/etc/apt/sources.list.d/kubernetes.list", ""),
            Some(Format::List)
        );
        assert_eq!(
            of("/etc/apt/sources.list.d/k.sources", "deb x /"),
            Some(Format::Deb822)
        );
        assert_eq!(of("/etc/yum.repos.d/kubernetes.repo", ""), Some(Format::Repo));
        assert_eq!(of("/srv/k", "# c\n\n[kubernetes]\n"), Some(Format::Repo));
        assert_eq!(of("/srv/k", "deb https://x/ /\n"), Some(Format::List));
        assert_eq!(
            of("/srv/k", "Types: deb\nURIs: https://x/\n"),
            Some(Format::Deb822)
        );
        assert_eq!(of("/srv/k", "hello\n"), None);
        assert_eq!(of("/srv/k", ""), None);
    }

    #[test]
    fn list_lines_keep_options_comments_and_line_endings() {
        let text = "# Kubernetes, as kubernetes.io says\n\
                    deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\r\n\
                    # deb https://pkgs.k8s.io/core:/stable:/v1.28/deb/ /\n\
                    deb-src   [ arch=amd64 ]  http://mirror.example/k8s/core:/stable:/v1.29/deb/ / # was 1.29\n\
                    deb https://download.docker.com/linux/debian bookworm stable";
        let found = scan(Format::List, text, 31);
        assert_eq!(
            found.text,
            "# Kubernetes, as kubernetes.io says\n\
             deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\r\n\
             # deb https://pkgs.k8s.io/core:/stable:/v1.28/deb/ /\n\
             deb-src   [ arch=amd64 ]  http://mirror.example/k8s/core:/stable:/v1.31/deb/ / # was 1.29\n\
             deb https://download.docker.com/linux/debian bookworm stable"
        );
        assert_eq!(found.minors, [29, 30]);
        assert_eq!(found.entries, 2);
        assert!(found.upstream);
        assert_eq!(
            found.keyrings,
            [
                Some("/etc/apt/keyrings/kubernetes-apt-keyring.gpg".to_string()),
                None
            ]
        );
        assert!(found.legacy.is_empty());
        // The comment's URL is not an entry even where it names a minor.
        assert_eq!(
            scan(
                Format::List,
                "# deb https://pkgs.k8s.io/core:/stable:/v1.28/deb/ /\n",
                31
            )
            .entries,
            0
        );
    }

    #[test]
    fn legacy_list_lines_are_found_and_kept() {
        let text = "deb https://apt.kubernetes.io/ kubernetes-xenial main\n\
                    deb [signed-by=/k.gpg] https://mirrors.example/kubernetes/apt kubernetes-xenial main\n";
        let found = scan(Format::List, text, 31);
        assert_eq!(found.text, text);
        assert_eq!(found.entries, 0);
        assert_eq!(
            found.legacy,
            [
                "https://apt.kubernetes.io/ kubernetes-xenial",
                "https://mirrors.example/kubernetes/apt kubernetes-xenial"
            ]
        );
    }

    #[test]
    fn deb822_uris_change_and_nothing_else() {
        let text = "# kubernetes\n\
                    Types: deb\n\
                    URIs: https://pkgs.k8s.io/core:/stable:/v1.30/deb/\n\
                    Suites: /\n\
                    Signed-By: /etc/apt/keyrings/kubernetes-apt-keyring.gpg\n\
                    \n\
                    Types: deb\n\
                    URIs: file:/srv/mirror/core:/stable:/v1.29/deb/\n\
                    \x20https://pkgs.k8s.io/core:/stable:/v1.29/deb/\n\
                    Suites: /\n\
                    Signed-By:\n\
                    \x20-----BEGIN PGP PUBLIC KEY BLOCK-----\n\
                    \x20.\n\
                    \x20x/core:/stable:/v1.28/\n\
                    \x20-----END PGP PUBLIC KEY BLOCK-----\n\
                    \n\
                    Types: deb\n\
                    URIs: https://deb.debian.org/debian\n\
                    Suites: bookworm\n";
        let found = scan(Format::Deb822, text, 31);
        assert_eq!(
            found.text,
            text.replace("v1.30", "v1.31").replace("v1.29", "v1.31")
        );
        assert_eq!(found.minors, [29, 30]);
        assert_eq!(found.entries, 2);
        assert_eq!(
            found.keyrings,
            [
                Some("/etc/apt/keyrings/kubernetes-apt-keyring.gpg".to_string()),
                None
            ]
        );
        let legacy =
            "Types: deb\nURIs: https://apt.kubernetes.io/\nSuites: kubernetes-xenial\nComponents: main\n";
        let found = scan(Format::Deb822, legacy, 31);
        assert_eq!((found.entries, found.text.as_str()), (0, legacy));
        assert_eq!(found.legacy, ["https://apt.kubernetes.io/", "kubernetes-xenial"]);
    }

    #[test]
    fn repo_baseurl_and_gpgkey_change_in_their_sections() {
        let text = "[kubernetes]\n\
                    name=Kubernetes\n\
                    baseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\n\
                    enabled=1\n\
                    gpgcheck=1\n\
                    gpgkey = https://pkgs.k8s.io/core:/stable:/v1.29/rpm/repodata/repomd.xml.key\n\
                    ; baseurl=https://pkgs.k8s.io/core:/stable:/v1.27/rpm/\n\
                    exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n\
                    \n\
                    [kubernetes-mirror]\n\
                    baseurl=http://mirror.example/a/\n\
                    \x20      file:///srv/k8s/core:/stable:/v1.30/rpm/\n\
                    \n\
                    [epel]\n\
                    baseurl=https://dl.fedoraproject.org/pub/epel/9/Everything/$basearch/\n";
        let found = scan(Format::Repo, text, 31);
        assert_eq!(
            found.text,
            text.replace("v1.30", "v1.31").replace("v1.29", "v1.31")
        );
        assert!(found
            .text
            .contains("; baseurl=https://pkgs.k8s.io/core:/stable:/v1.27/rpm/"));
        assert_eq!(found.minors, [29, 30]);
        assert_eq!(found.repo_ids, ["kubernetes", "kubernetes-mirror"]);
        assert_eq!(found.entries, 2);
        assert!(found.keyrings.is_empty());

        let legacy = "[kubernetes]\n\
                      baseurl=https://packages.cloud.google.com/yum/repos/kubernetes-el7-$basearch\n\
                      gpgkey=https://packages.cloud.google.com/yum/doc/yum-key.gpg\n";
        let found = scan(Format::Repo, legacy, 31);
        assert_eq!((found.entries, found.text.as_str()), (0, legacy));
        assert_eq!(
            found.legacy,
            ["https://packages.cloud.google.com/yum/repos/kubernetes-el7-$basearch"]
        );
    }

    #[test]
    fn a_file_already_at_the_target_is_the_same_text() {
        for (format, text) in [
            (
                Format::List,
                "deb https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n",
            ),
            (
                Format::Deb822,
                "Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.31/deb/\nSuites: /\n",
            ),
            (
                Format::Repo,
                "[kubernetes]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/\n",
            ),
        ] {
            let found = scan(format, text, 31);
            assert_eq!((found.text.as_str(), found.minors.as_slice()), (text, &[31][..]));
            assert_eq!(found.entries, 1);
        }
    }

    #[test]
    fn text_without_kubernetes_repositories_has_no_entries() {
        for format in [Format::List, Format::Deb822, Format::Repo] {
            for text in [
                "",
                "hello\n",
                "deb https://deb.debian.org/debian bookworm main\n",
                "[x]\nbaseurl=\n",
            ] {
                let found = scan(format, text, 31);
                assert_eq!(found.text, text);
                assert_eq!((found.entries, found.legacy.len()), (0, 0), "{format:?} {text:?}");
            }
        }
    }
}
