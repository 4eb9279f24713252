//! The crate's top-level modules form no import circle: every `crate::x` a module's
//! non-test code names is a module below it. Read from the source text, so a new circle
//! fails here with the modules that form it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules its code names through `crate::`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "tests") {
                    stack.push(path);
                }
                continue;
            }
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let top = rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            if !rel.ends_with(".rs")
                || rel.ends_with("tests.rs")
                || ["lib", "main", "fuzzing"].contains(&top.as_str())
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let deps = g.entry(top.clone()).or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for name in crate_names(line) {
                    if name != top {
                        deps.insert(name);
                    }
                }
            }
        }
    }
    g
}

/// The first path segment after every `crate::` in `line`, `use crate::{a, b}` included.
fn crate_names(line: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in line.match_indices("crate::") {
        let rest = &line[i + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => out.extend(group.split('}').next().unwrap().split(',').map(ident)),
            None => out.push(ident(rest)),
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// A circle through `from`, if there is one.
fn circle(g: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        for next in g.get(at).into_iter().flatten() {
            if next == &path[0] {
                return Some(path.clone());
            }
            if g.contains_key(next) && seen.insert(next.clone()) {
                path.push(next.clone());
                if let Some(c) = walk(g, next, path, seen) {
                    return Some(c);
                }
                path.pop();
            }
        }
        None
    }
    walk(g, from, &mut vec![from.to_string()], &mut BTreeSet::new())
}

#[test]
fn no_import_circle_among_top_level_modules() {
    let g = graph();
    assert!(g.len() > 20, "the source tree was read: {:?}", g.keys());
    assert!(
        g["proxy"].contains("auth"),
        "edges were read: {:?}",
        g["proxy"]
    );
    for m in g.keys() {
        if let Some(c) = circle(&g, m) {
            panic!("import circle: {} -> {m}", c.join(" -> "));
        }
    }
}

#[test]
fn a_circle_is_found_when_there_is_one() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circle(&g, "a").unwrap(), ["a", "b", "c"]);
    assert_eq!(
        crate_names("use crate::{audit, http::reply::Reply};"),
        ["audit", "http"]
    );
    assert_eq!(
        crate_names("let x = crate::clock::now(); crate::net::y"),
        ["clock", "net"]
    );
}
