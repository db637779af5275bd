//! The import-layer check: reads every `crate::...` path in `src/`, maps it
//! to a top-level module and that module to its layer, and fails on a path
//! that points up a layer or on a cycle between top-level modules.
//!
//! Run it alone with `cargo test --test layers`. The layers (see
//! ARCHITECTURE.md) are listed below; a new top-level module must be put
//! in one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules by layer, from the top. A module may use modules of
/// its own layer (without a cycle) and of the layers below it.
const LAYERS: &[(&str, &[&str])] = &[
    ("cli", &["cli"]),
    (
        "features",
        &[
            "agency", "bus", "approval", "tasks", "monitor", "tui", "demo",
        ],
    ),
    ("core", &["context", "runtime", "error"]),
    ("doors", &["store", "os", "workspace", "logging"]),
    ("model", &["model"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None`: the crate
/// root and the binary).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The line without its `//` comment (doc comments included).
fn code(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with("//") {
        return "";
    }
    match line.find(" //") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The top-level modules a line names: `crate::x::...` and each item of
/// `crate::{x, y::z}`.
fn used(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    out.push(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
        rest = after;
    }
    out
}

/// Every edge between two top-level modules, with where it is written.
fn edges() -> BTreeMap<(String, String), Vec<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let Some(from) = module_of(rel) else { continue };
        let text = fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for to in used(code(line)) {
                if to != from {
                    edges.entry((from.clone(), to)).or_default().push(format!(
                        "src/{}:{}",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    edges
}

/// The modules `from` reaches, itself not counted unless on a cycle.
fn reach(from: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        for next in graph.get(&m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn dependencies_point_down_the_layers_and_never_in_a_cycle() {
    let edges = edges();
    let mut problems = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((from, to), at) in &edges {
        graph.entry(from.clone()).or_default().insert(to.clone());
        let (Some(lf), Some(lt)) = (layer_of(from), layer_of(to)) else {
            for m in [from, to] {
                if layer_of(m).is_none() {
                    problems.push(format!("{m} is in no layer (add it to LAYERS)"));
                }
            }
            continue;
        };
        if lt < lf {
            problems.push(format!(
                "{from} ({}) uses {to} ({}), a layer above it: {}",
                LAYERS[lf].0,
                LAYERS[lt].0,
                at.join(", ")
            ));
        }
    }
    // Modules that reach each other form a cycle: each such group once,
    // with the edges inside it.
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m, &graph))).collect();
    let mut groups = BTreeSet::new();
    for (m, r) in &reaches {
        let group: BTreeSet<&String> = std::iter::once(*m)
            .chain(
                r.iter()
                    .filter(|o| reaches.get(o).is_some_and(|b| b.contains(*m))),
            )
            .collect();
        if group.len() > 1 || r.contains(*m) {
            groups.insert(group);
        }
    }
    for g in groups {
        let inside: Vec<String> = edges
            .iter()
            .filter(|((a, b), _)| g.contains(a) && g.contains(b))
            .map(|((a, b), at)| format!("{a} -> {b} ({})", at[0]))
            .collect();
        let names: Vec<&str> = g.iter().map(|s| s.as_str()).collect();
        problems.push(format!(
            "cycle among {}: {}",
            names.join(", "),
            inside.join("; ")
        ));
    }
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "{} problem(s) with the layers:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn the_reader_sees_paths_in_every_form() {
    assert_eq!(used("use crate::store::Store;"), ["store"]);
    assert_eq!(used("use crate::{model::Role, os::tmux};"), ["model", "os"]);
    assert_eq!(
        used("let x = crate::bus::header(1) + crate::model::X;"),
        ["bus", "model"]
    );
    assert!(used(code("/// see `crate::tasks`")).is_empty());
    assert_eq!(module_of(Path::new("agency/plan.rs")).unwrap(), "agency");
    assert_eq!(module_of(Path::new("error.rs")).unwrap(), "error");
    assert!(module_of(Path::new("lib.rs")).is_none());
}
