//! The invariants ARCHITECTURE.md promises, checked on the source itself
//! (in the spirit of rust-analyzer's `tidy.rs`): no NATS subject, stream or
//! bucket name spelled outside `proto`; no service depending on another
//! service; a `//!` doc on every module file; no function over
//! [`FUNCTION_LINES_MAX`] lines and no `impl` block over [`IMPL_LINES_MAX`]
//! lines outside tests, unless a `// tidy: long` comment right above it
//! says why.
//!
//! Each check collects every offence before failing, so one run names them
//! all, with the file and line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Longest function, in lines from its signature to its closing brace.
const FUNCTION_LINES_MAX: usize = 120;
/// Longest `impl` block, in lines.
const IMPL_LINES_MAX: usize = 400;
/// The comment that lets one function or impl block be longer, with its reason after it.
const LONG_MARKER: &str = "// tidy: long";
/// The one crate that may name subjects, streams and buckets.
const CONTRACT_CRATE: &str = "proto";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Every crate's folder: `proto`, `lib/*`, `services/*`, `switchboard`, `tools`, `tests`.
fn crates() -> Vec<PathBuf> {
    let root = workspace();
    let mut crates = vec![
        root.join("proto"),
        root.join("switchboard"),
        root.join("tools"),
    ];
    for group in ["lib", "services"] {
        let mut members: Vec<PathBuf> = fs::read_dir(root.join(group))
            .expect("the group folder exists")
            .map(|entry| entry.expect("a readable entry").path())
            .filter(|path| path.join("Cargo.toml").is_file())
            .collect();
        members.sort();
        crates.extend(members);
    }
    crates
}

fn services() -> Vec<PathBuf> {
    crates()
        .into_iter()
        .filter(|path| path.parent().and_then(Path::file_name) == Some("services".as_ref()))
        .collect()
}

fn crate_name(path: &Path) -> String {
    let manifest = fs::read_to_string(path.join("Cargo.toml")).expect("a readable manifest");
    manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("name = "))
        .map(|name| name.trim_matches('"').to_owned())
        .expect("a manifest names its package")
}

/// The production source files of a crate: everything under `src/`.
fn source_files(crate_dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![crate_dir.join("src")];
    if crate_dir.ends_with("tests") {
        folders = vec![crate_dir.join("harness")];
    }
    while let Some(folder) = folders.pop() {
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension() == Some("rs".as_ref()) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn parse(path: &Path) -> (String, syn::File) {
    let text = fs::read_to_string(path).expect("a readable source file");
    let file = syn::parse_file(&text)
        .unwrap_or_else(|error| panic!("{} does not parse: {error}", relative(path)));
    (text, file)
}

fn is_test_only(attributes: &[syn::Attribute]) -> bool {
    attributes.iter().any(|attribute| {
        let path = attribute.path();
        if path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "test")
        {
            return true;
        }
        match &attribute.meta {
            syn::Meta::List(list) if path.is_ident("cfg") => {
                let condition = list.tokens.to_string();
                condition.contains("test") && !condition.contains("not")
            }
            _ => false,
        }
    })
}

/// A string that names a NATS subject, a stream or a bucket.
fn is_subject_literal(value: &str) -> bool {
    let prefixed = ["sb.", "$JS.", "$KV.", "$SRV.", "$SYS.", "_INBOX."]
        .iter()
        .any(|prefix| value.starts_with(prefix));
    let stream_name = value.len() > 3
        && value.starts_with("SB_")
        && value[3..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_');
    let templated = ["in", "ev", "match", "to", "dlq", "ledger", "plan"]
        .iter()
        .any(|token| value.contains(&format!("}}.{token}.")));
    prefixed || stream_name || templated
}

/// Walks one file, outside test-only items, collecting what the checks need.
struct Walk<'a> {
    text: &'a str,
    file: String,
    subjects: Vec<String>,
    long: Vec<String>,
    /// Modules declared `#[cfg(test)] mod name;`: their files are tests.
    test_modules: Vec<String>,
}

impl Walk<'_> {
    fn literal(&mut self, value: &str, line: usize) {
        if is_subject_literal(value) {
            self.subjects
                .push(format!("{}:{line}: {value:?}", self.file));
        }
    }

    fn tokens(&mut self, tokens: TokenStream) {
        for token in tokens {
            match token {
                TokenTree::Group(group) => self.tokens(group.stream()),
                TokenTree::Literal(literal) => {
                    if let Ok(syn::Lit::Str(string)) =
                        syn::parse_str::<syn::Lit>(&literal.to_string())
                    {
                        self.literal(&string.value(), literal.span().start().line);
                    }
                }
                TokenTree::Ident(_) | TokenTree::Punct(_) => {}
            }
        }
    }

    /// Whether the lines just above `line` (docs and attributes) hold the marker.
    fn excused(&self, line: usize) -> bool {
        let lines: Vec<&str> = self.text.lines().collect();
        let mut index = line.saturating_sub(1);
        while index > 0 {
            index -= 1;
            let above = lines[index].trim();
            if above.starts_with(LONG_MARKER) {
                return true;
            }
            if !(above.starts_with("//") || above.starts_with("#[")) {
                return false;
            }
        }
        false
    }

    fn function(&mut self, signature: &syn::Signature, body: &syn::Block) {
        self.measure(
            "function",
            &signature.ident.to_string(),
            signature.fn_token.span,
            body.brace_token.span.close(),
            FUNCTION_LINES_MAX,
        );
    }

    /// Measures from the `fn` or `impl` keyword at `start` to the closing brace.
    fn measure(
        &mut self,
        what: &str,
        name: &str,
        start: proc_macro2::Span,
        end: proc_macro2::Span,
        max: usize,
    ) {
        let (start, end) = (start.start().line, end.end().line);
        let lines = end - start + 1;
        if lines > max && !self.excused(start) {
            self.long.push(format!(
                "{}:{start}: {what} `{name}` has {lines} lines (at most {max}, or say why with `{LONG_MARKER}: ...`)",
                self.file
            ));
        }
    }
}

impl<'ast> Visit<'ast> for Walk<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attributes: &[syn::Attribute] = match item {
            syn::Item::Mod(item) => &item.attrs,
            syn::Item::Fn(item) => &item.attrs,
            syn::Item::Impl(item) => &item.attrs,
            syn::Item::Const(item) => &item.attrs,
            syn::Item::Static(item) => &item.attrs,
            syn::Item::Use(item) => &item.attrs,
            _ => &[],
        };
        if is_test_only(attributes) {
            if let syn::Item::Mod(module) = item {
                if module.content.is_none() {
                    self.test_modules.push(module.ident.to_string());
                }
            }
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.function(&item.sig, &item.block);
        syn::visit::visit_item_fn(self, item);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if is_test_only(&item.attrs) {
            return;
        }
        self.function(&item.sig, &item.block);
        syn::visit::visit_impl_item_fn(self, item);
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        let name = match &*item.self_ty {
            syn::Type::Path(path) => path
                .path
                .segments
                .last()
                .map(|segment| segment.ident.to_string())
                .unwrap_or_default(),
            _ => String::from("(type)"),
        };
        self.measure(
            "impl",
            &name,
            item.impl_token.span,
            item.brace_token.span.close(),
            IMPL_LINES_MAX,
        );
        syn::visit::visit_item_impl(self, item);
    }

    fn visit_lit_str(&mut self, literal: &'ast syn::LitStr) {
        self.literal(&literal.value(), literal.span().start().line);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
    }
}

/// The files a `#[cfg(test)] mod name;` in `declaring` may live in.
fn module_files(declaring: &Path, name: &str) -> [PathBuf; 2] {
    let folder = declaring.parent().expect("a file has a folder");
    let stem = declaring
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_default();
    let base = if ["lib", "main", "mod"].contains(&stem) {
        folder.to_path_buf()
    } else {
        folder.join(stem)
    };
    [
        base.join(format!("{name}.rs")),
        base.join(name).join("mod.rs"),
    ]
}

/// Walks every production file of the given crates; files of test-only
/// modules, and everything under `#[cfg(test)]` or `#[test]`, are skipped.
fn walk(crate_dirs: &[PathBuf]) -> (Vec<String>, Vec<String>) {
    let mut subjects = Vec::new();
    let mut long = Vec::new();
    for crate_dir in crate_dirs {
        let files = source_files(crate_dir);
        let mut test_files: Vec<PathBuf> = Vec::new();
        for path in &files {
            if test_files.contains(path) {
                continue;
            }
            let (text, file) = parse(path);
            let mut walk = Walk {
                text: &text,
                file: relative(path),
                subjects: Vec::new(),
                long: Vec::new(),
                test_modules: Vec::new(),
            };
            walk.visit_file(&file);
            subjects.extend(walk.subjects);
            long.extend(walk.long);
            for module in &walk.test_modules {
                test_files.extend(module_files(path, module));
            }
        }
    }
    (subjects, long)
}

fn production_crates() -> Vec<PathBuf> {
    crates()
        .into_iter()
        .filter(|path| !path.ends_with("tools"))
        .collect()
}

#[test]
fn no_subject_is_spelled_outside_proto() {
    let others: Vec<PathBuf> = crates()
        .into_iter()
        .filter(|path| crate_name(path) != CONTRACT_CRATE)
        .chain([workspace().join("tests")])
        .collect();
    let (subjects, _) = walk(&others);
    assert!(
        subjects.is_empty(),
        "subjects, streams and buckets are named only by proto::subjects; spelled elsewhere:\n{}",
        subjects.join("\n")
    );
}

#[test]
fn the_checker_knows_a_subject_when_it_sees_one() {
    for subject in [
        "sb.in.volunteer",
        "SB_EVENTS",
        "{prefix}.ev.need",
        "$JS.API.>",
        "_INBOX.x",
    ] {
        assert!(is_subject_literal(subject), "{subject}");
    }
    for other in ["volunteer", "SB", "{name}.json", "sb", "in.volunteer"] {
        assert!(!is_subject_literal(other), "{other}");
    }
}

#[test]
fn no_service_depends_on_another_service() {
    let names: Vec<String> = services().iter().map(|path| crate_name(path)).collect();
    let mut offences = Vec::new();
    for crate_dir in crates()
        .into_iter()
        .filter(|path| !path.ends_with("switchboard") && !path.ends_with("tools"))
    {
        let own = crate_name(&crate_dir);
        let manifest =
            fs::read_to_string(crate_dir.join("Cargo.toml")).expect("a readable manifest");
        let mut section = String::new();
        for (index, line) in manifest.lines().enumerate() {
            let line = line.trim();
            if line.starts_with('[') {
                section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
                continue;
            }
            if !(section == "dependencies" || section == "build-dependencies") {
                continue;
            }
            let Some((dependency, _)) = line.split_once('=') else {
                continue;
            };
            let dependency = dependency.trim();
            if names.iter().any(|name| name == dependency) && dependency != own {
                offences.push(format!(
                    "{}/Cargo.toml:{}: {own} depends on the service {dependency}",
                    relative(&crate_dir),
                    index + 1
                ));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "services meet only on NATS; only the binary, the tools and the tests may link them:\n{}",
        offences.join("\n")
    );
}

#[test]
fn every_module_file_says_what_it_is() {
    let mut offences = Vec::new();
    for crate_dir in crates().into_iter().chain([workspace().join("tests")]) {
        for path in source_files(&crate_dir) {
            let text = fs::read_to_string(&path).expect("a readable source file");
            let first = text
                .lines()
                .map(str::trim)
                .find(|line| !line.is_empty() && !line.starts_with("#!["));
            if !first.is_some_and(|line| line.starts_with("//!")) {
                offences.push(relative(&path));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "every module file begins with a `//!` doc saying what it is for:\n{}",
        offences.join("\n")
    );
}

/// Offences known and owed, each with the work that removes it. The test
/// fails when one is fixed and still listed, so the list only shrinks.
const OWED: [(&str, &str, &str); 4] = [
    (
        "services/solver/src/lib.rs",
        "impl `Solver`",
        "#14: the solver's planner with no I/O takes the open world, the plan and the scheduling out of the shell",
    ),
    ("services/solver/src/lib.rs", "function `run`", "#14: the solver's shell"),
    ("lib/solver-core/src/optimise.rs", "function `improve`", "#14: the improvement loop apart from its bookkeeping"),
    ("lib/solver-core/src/live.rs", "impl `LivePlan`", "#16: the live plan's repairs apart from its queries"),
];

#[test]
fn no_function_or_impl_is_too_long_to_read() {
    let (_, long) = walk(&production_crates());
    let owed = |offence: &String| {
        OWED.iter()
            .any(|(file, item, _)| offence.starts_with(file) && offence.contains(item))
    };
    let new: Vec<&String> = long.iter().filter(|offence| !owed(offence)).collect();
    assert!(
        new.is_empty(),
        "outside tests, functions stay within {FUNCTION_LINES_MAX} lines and impl blocks within {IMPL_LINES_MAX}:\n{}",
        new.iter().map(|offence| offence.as_str()).collect::<Vec<_>>().join("\n")
    );
    let paid: Vec<String> = OWED
        .iter()
        .filter(|(file, item, _)| {
            !long
                .iter()
                .any(|offence| offence.starts_with(file) && offence.contains(item))
        })
        .map(|(file, item, _)| format!("{file}: {item}"))
        .collect();
    assert!(paid.is_empty(), "fixed, so take them off OWED: {paid:?}");
}
