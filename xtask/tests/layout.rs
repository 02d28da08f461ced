//! The layout rules the README states, kept true by a scan of the code:
//!
//! - **No import cycle between the top-level modules of a crate.** A file's
//!   top-level module is the first segment of its path under `src/`
//!   (`src/retry/executor.rs` belongs to `retry`); `src/lib.rs` and
//!   `src/main.rs` are the crate root and no module, and each file under
//!   `src/bin/` is a crate of its own. Module `a` references module `b` when
//!   a file of `a` names `crate::b` (also in a `use crate::{b, ..}` group,
//!   through `super::` that climbs out of `a`, or through a name the crate
//!   root re-exports from `b`). Code inside macro calls and inline `mod`
//!   blocks (`mod tests`) counts, and so does a path written as an
//!   attribute's string (`#[serde(with = "crate::secs")]`); comments, doc
//!   links and other string literals do not. Any cycle of references (`a`
//!   to `b` to `a`, or longer) fails, naming each reference in it.
//! - **No hand-written file under any crate's `src/` is over 600 lines**
//!   (`generated.rs` is generated and checked by `cargo xtask codegen
//!   --check`).
//!
//! The scanner works on in-memory files, so the first tests show it finding
//! a planted cycle and ignoring what is not a reference; the last two run it
//! on every workspace crate.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The most lines a hand-written file under `src/` may have.
const MAX_LINES: usize = 600;

/// A file of a crate: its path relative to the crate's `src/`, and its text.
struct SourceFile {
    path: String,
    text: String,
}

// ---------------------------------------------------------------- lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Open(char),
    Close(char),
    Punct(char),
    /// A plain `"…"` literal: only its content matters, and only inside an
    /// attribute (`#[serde(with = "crate::secs")]` names a module).
    Str(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Splits Rust source into the tokens the scan needs. Comments (doc comments
/// included), string, byte-string, raw-string and character literals,
/// lifetimes and numbers produce no identifier, so nothing inside them can
/// look like a path; a plain string becomes one [`Tok::Str`].
fn lex(src: &str) -> Result<Vec<Token>, String> {
    let mut lx = Lexer {
        c: src.chars().collect(),
        i: 0,
        line: 1,
        out: Vec::new(),
    };
    while lx.i < lx.c.len() {
        let ch = lx.c[lx.i];
        match ch {
            '\n' => {
                lx.line += 1;
                lx.i += 1;
            }
            _ if ch.is_whitespace() => lx.i += 1,
            '/' if lx.at(1) == '/' => {
                while lx.i < lx.c.len() && lx.c[lx.i] != '\n' {
                    lx.i += 1;
                }
            }
            '/' if lx.at(1) == '*' => lx.block_comment()?,
            '"' => {
                let line = lx.line;
                let start = lx.i + 1;
                lx.i = start;
                lx.string()?;
                let text = lx.c[start..lx.i - 1].iter().collect();
                lx.push(Tok::Str(text), line);
            }
            '\'' => lx.char_or_lifetime(),
            _ if ch.is_ascii_digit() => {
                while lx.i < lx.c.len() && is_ident_char(lx.c[lx.i]) {
                    lx.i += 1;
                }
            }
            _ if ch == '_' || ch.is_alphabetic() => lx.word()?,
            ':' if lx.at(1) == ':' => {
                lx.push(Tok::PathSep, lx.line);
                lx.i += 2;
            }
            _ => {
                let tok = match ch {
                    '{' | '(' | '[' => Tok::Open(ch),
                    '}' | ')' | ']' => Tok::Close(ch),
                    _ => Tok::Punct(ch),
                };
                lx.push(tok, lx.line);
                lx.i += 1;
            }
        }
    }
    Ok(lx.out)
}

struct Lexer {
    c: Vec<char>,
    i: usize,
    line: usize,
    out: Vec<Token>,
}

impl Lexer {
    /// The character `k` places ahead (`'\0'` past the end).
    fn at(&self, k: usize) -> char {
        self.c.get(self.i + k).copied().unwrap_or('\0')
    }

    fn push(&mut self, tok: Tok, line: usize) {
        self.out.push(Token { tok, line });
    }

    /// A `/* .. */` comment, nested ones included.
    fn block_comment(&mut self) -> Result<(), String> {
        let start = self.line;
        let mut depth = 0;
        loop {
            if self.i >= self.c.len() {
                return Err(format!("line {start}: unterminated block comment"));
            }
            if self.c[self.i] == '/' && self.at(1) == '*' {
                depth += 1;
                self.i += 2;
            } else if self.c[self.i] == '*' && self.at(1) == '/' {
                depth -= 1;
                self.i += 2;
                if depth == 0 {
                    return Ok(());
                }
            } else {
                if self.c[self.i] == '\n' {
                    self.line += 1;
                }
                self.i += 1;
            }
        }
    }

    /// The rest of a `"…"` literal whose opening quote is just behind.
    fn string(&mut self) -> Result<(), String> {
        let start = self.line;
        while self.i < self.c.len() {
            match self.c[self.i] {
                '\\' => self.i += 2,
                '"' => {
                    self.i += 1;
                    return Ok(());
                }
                '\n' => {
                    self.line += 1;
                    self.i += 1;
                }
                _ => self.i += 1,
            }
        }
        Err(format!("line {start}: unterminated string literal"))
    }

    /// The rest of a raw string whose opening `#…#"` is just behind.
    fn raw_string(&mut self, hashes: usize) -> Result<(), String> {
        let start = self.line;
        while self.i < self.c.len() {
            if self.c[self.i] == '"' && (1..=hashes).all(|k| self.at(k) == '#') {
                self.i += 1 + hashes;
                return Ok(());
            }
            if self.c[self.i] == '\n' {
                self.line += 1;
            }
            self.i += 1;
        }
        Err(format!("line {start}: unterminated raw string literal"))
    }

    /// A character literal (`'x'`, `'{'`, `'\''`, `'\u{..}'`), or a
    /// lifetime or label (`'a`, `'static`), at a `'`.
    fn char_or_lifetime(&mut self) {
        if self.at(1) == '\\' {
            self.i += 3;
            while self.i < self.c.len() && self.c[self.i] != '\'' {
                self.i += 1;
            }
            self.i += 1;
        } else if self.at(2) == '\'' {
            self.i += 3;
        } else {
            self.i += 1;
            while self.i < self.c.len() && is_ident_char(self.c[self.i]) {
                self.i += 1;
            }
        }
    }

    /// An identifier or keyword, or a literal with a prefix: `r"…"`,
    /// `r#"…"#`, `b"…"`, `br"…"`, `c"…"`, `b'x'`; `r#type` is the
    /// identifier `type`.
    fn word(&mut self) -> Result<(), String> {
        let start = self.i;
        while self.i < self.c.len() && is_ident_char(self.c[self.i]) {
            self.i += 1;
        }
        let word: String = self.c[start..self.i].iter().collect();
        let next = self.at(0);
        match word.as_str() {
            "r" | "br" | "cr" if next == '"' || next == '#' => {
                let mut hashes = 0;
                while self.at(hashes) == '#' {
                    hashes += 1;
                }
                if self.at(hashes) == '"' {
                    self.i += hashes + 1;
                    self.raw_string(hashes)?;
                } else if word == "r" && hashes == 1 {
                    self.i += 1;
                    let name_start = self.i;
                    while self.i < self.c.len() && is_ident_char(self.c[self.i]) {
                        self.i += 1;
                    }
                    let name = self.c[name_start..self.i].iter().collect();
                    self.push(Tok::Ident(name), self.line);
                } else {
                    self.push(Tok::Ident(word), self.line);
                }
            }
            "b" | "c" if next == '"' => {
                self.i += 1;
                self.string()?;
            }
            "b" if next == '\'' => self.char_or_lifetime(),
            _ => self.push(Tok::Ident(word), self.line),
        }
        Ok(())
    }
}

fn is_ident_char(ch: char) -> bool {
    ch == '_' || ch.is_alphanumeric()
}

// ---------------------------------------------------------------- the graph

/// Where one module references another: the file, the line, what it names.
#[derive(Debug, Clone)]
struct Reference {
    file: String,
    line: usize,
    named: String,
}

/// The references between the top-level modules of one crate:
/// `edges[a][b]` lists where module `a` references module `b`.
#[derive(Debug, Default)]
struct Graph {
    edges: BTreeMap<String, BTreeMap<String, Vec<Reference>>>,
}

/// The module path of a file under `src/`: `retry/executor.rs` is
/// `[retry, executor]`, `retry/mod.rs` is `[retry]`, `lib.rs` is `[]`.
/// `None` for a file under `bin/` (a crate of its own).
fn module_path(path: &str) -> Option<Vec<String>> {
    let stem = path.strip_suffix(".rs")?;
    let mut parts: Vec<String> = stem.split('/').map(str::to_owned).collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        return Some(Vec::new());
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    Some(parts)
}

/// What the crate root makes visible as `crate::NAME`: each top-level module
/// by its own name, each name the root re-exports from one of them, and the
/// modules it glob-re-exports (`pub use generated::*`).
#[derive(Debug, Default)]
struct Root {
    modules: BTreeSet<String>,
    reexports: BTreeMap<String, String>,
    globs: BTreeSet<String>,
}

impl Root {
    /// The top-level modules that `crate::NAME` can stand for.
    fn resolve(&self, name: &str) -> Vec<String> {
        if self.modules.contains(name) {
            vec![name.to_owned()]
        } else if let Some(module) = self.reexports.get(name) {
            vec![module.clone()]
        } else if name == "*" {
            let mut all: BTreeSet<String> = self.reexports.values().cloned().collect();
            all.extend(self.globs.iter().cloned());
            all.into_iter().collect()
        } else {
            // A root item of its own (or a macro), or a glob re-export's.
            self.globs.iter().cloned().collect()
        }
    }
}

/// Reads the `use` items at the top of a root file into `root`.
fn read_root_uses(tokens: &[Token], root: &mut Root) {
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].tok {
            Tok::Open(_) => depth += 1,
            Tok::Close(_) => depth = depth.saturating_sub(1),
            Tok::Ident(w) if w == "use" && depth == 0 => {
                let end = (i..tokens.len())
                    .find(|&k| tokens[k].tok == Tok::Punct(';'))
                    .unwrap_or(tokens.len());
                let mut tree = &tokens[i + 1..end];
                // `use crate::a::X` and `use self::a::X` both start at `a`.
                if let [first, sep, rest @ ..] = tree
                    && matches!(&first.tok, Tok::Ident(w) if w == "crate" || w == "self")
                    && sep.tok == Tok::PathSep
                {
                    tree = rest;
                }
                if let Some(Token {
                    tok: Tok::Ident(module),
                    ..
                }) = tree.first()
                    && root.modules.contains(module)
                {
                    for leaf in use_leaves(tree) {
                        if leaf == "*" {
                            root.globs.insert(module.clone());
                        } else {
                            root.reexports.insert(leaf, module.clone());
                        }
                    }
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
}

/// The names a use tree brings into scope (`a::{B, c::D as E, self}` gives
/// `B`, `E`, `a`), and `*` for a glob.
fn use_leaves(tree: &[Token]) -> Vec<String> {
    let mut leaves = Vec::new();
    let mut last: Option<String> = None;
    let mut i = 0;
    while i < tree.len() {
        match &tree[i].tok {
            Tok::Ident(w) if w == "as" => {
                if let Some(Tok::Ident(alias)) = tree.get(i + 1).map(|t| &t.tok) {
                    last = Some(alias.clone());
                }
                i += 1;
            }
            Tok::Ident(w) if w == "self" => {}
            Tok::Ident(w) => last = Some(w.clone()),
            Tok::Punct('*') => leaves.push("*".to_owned()),
            Tok::Open('{') => {
                let close = matching(tree, i);
                for entry in split_group(&tree[i + 1..close]) {
                    if entry.len() == 1 && entry[0].tok == Tok::Ident("self".to_owned()) {
                        leaves.extend(last.clone());
                    } else {
                        leaves.extend(use_leaves(entry));
                    }
                }
                return leaves;
            }
            _ => {}
        }
        i += 1;
    }
    leaves.extend(last);
    leaves
}

/// The index of the bracket that closes the one opened at `open`.
fn matching(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, t) in tokens.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Open(_) => depth += 1,
            Tok::Close(_) => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// The comma-separated entries of a group's inside, nested groups kept whole.
fn split_group(inside: &[Token]) -> Vec<&[Token]> {
    let mut entries = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (k, t) in inside.iter().enumerate() {
        match t.tok {
            Tok::Open(_) => depth += 1,
            Tok::Close(_) => depth = depth.saturating_sub(1),
            Tok::Punct(',') if depth == 0 => {
                entries.push(&inside[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    entries.push(&inside[start..]);
    entries.retain(|e| !e.is_empty());
    entries
}

/// The first names of the paths that start at the crate root at `tokens[j]`
/// (just after `crate::`): `a` for `crate::a::X`, `a` and `b` for
/// `crate::{a::X, b}`, `*` for `crate::*`.
fn root_names(tokens: &[Token], j: usize) -> Vec<String> {
    match tokens.get(j).map(|t| &t.tok) {
        Some(Tok::Ident(name)) => vec![name.clone()],
        Some(Tok::Punct('*')) => vec!["*".to_owned()],
        Some(Tok::Open('{')) => {
            let close = matching(tokens, j);
            split_group(&tokens[j + 1..close])
                .into_iter()
                .filter_map(|entry| match &entry[0].tok {
                    Tok::Ident(w) if w == "self" => None,
                    Tok::Ident(w) => Some(w.clone()),
                    Tok::Punct('*') => Some("*".to_owned()),
                    _ => None,
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

fn is_ident(t: Option<&Token>, word: &str) -> bool {
    matches!(t.map(|t| &t.tok), Some(Tok::Ident(w)) if w == word)
}

fn is_sep(t: Option<&Token>) -> bool {
    matches!(t.map(|t| &t.tok), Some(Tok::PathSep))
}

/// The crate-root names a path starting at `tokens[i]` leads to: `crate::a`
/// gives `a`; `super::` climbs one module per `super` from a module `here`
/// levels deep (its file's path plus inline `mod` blocks), and gives a name
/// only when it climbs to the root. Empty for anything else.
fn named_at(tokens: &[Token], i: usize, here: usize) -> Result<Vec<String>, String> {
    if i > 0 && is_sep(tokens.get(i - 1)) {
        return Ok(Vec::new()); // the middle of a path (`a::crate` is no path)
    }
    if is_ident(tokens.get(i), "crate") && is_sep(tokens.get(i + 1)) {
        return Ok(root_names(tokens, i + 2));
    }
    if !is_ident(tokens.get(i), "super") {
        return Ok(Vec::new());
    }
    let mut k = i;
    let mut climbs = 0;
    while is_ident(tokens.get(k), "super") && is_sep(tokens.get(k + 1)) {
        climbs += 1;
        k += 2;
    }
    match climbs.cmp(&here) {
        std::cmp::Ordering::Greater => Err("`super` climbs above the crate root".to_owned()),
        std::cmp::Ordering::Equal => Ok(root_names(tokens, k)),
        std::cmp::Ordering::Less => Ok(Vec::new()), // still inside this top-level module
    }
}

/// Builds the reference graph of one crate from the files under its `src/`.
fn graph(files: &[SourceFile]) -> Result<Graph, String> {
    let mut root = Root::default();
    let mut lexed = Vec::new();
    for file in files {
        let tokens = lex(&file.text).map_err(|e| format!("{}: {e}", file.path))?;
        if let Some(path) = module_path(&file.path) {
            if let Some(top) = path.first() {
                root.modules.insert(top.clone());
            }
            lexed.push((file, path, tokens));
        }
    }
    for (_, path, tokens) in &lexed {
        if path.is_empty() {
            read_root_uses(tokens, &mut root);
        }
    }
    let mut graph = Graph::default();
    for (file, path, tokens) in &lexed {
        let Some(top) = path.first() else { continue };
        let at = |line: usize| format!("{}:{line}", file.path);
        // Inline `mod name { .. }` blocks, with the brace depth they close at.
        let mut inline: Vec<(usize, String)> = Vec::new();
        let mut depth = 0usize;
        // Open brackets, each marked when it opens an attribute `#[..]`
        // other than `#[doc = ".."]` (documentation, like `///`).
        let mut brackets: Vec<bool> = Vec::new();
        for i in 0..tokens.len() {
            match &tokens[i].tok {
                Tok::Open(open) => {
                    let hash = |k: usize| i >= k && tokens[i - k].tok == Tok::Punct('#');
                    let bang = i >= 1 && tokens[i - 1].tok == Tok::Punct('!');
                    let doc = is_ident(tokens.get(i + 1), "doc");
                    brackets.push(*open == '[' && (hash(1) || (bang && hash(2))) && !doc);
                    if *open == '{' {
                        depth += 1;
                        if i >= 2
                            && is_ident(tokens.get(i - 2), "mod")
                            && let Tok::Ident(name) = &tokens[i - 1].tok
                        {
                            inline.push((depth, name.clone()));
                        }
                    }
                }
                Tok::Close(close) => {
                    brackets.pop();
                    if *close == '}' {
                        if inline.last().is_some_and(|(d, _)| *d == depth) {
                            inline.pop();
                        }
                        depth = depth.saturating_sub(1);
                    }
                }
                _ => {}
            }
            let here = path.len() + inline.len();
            let mut named =
                named_at(tokens, i, here).map_err(|e| format!("{}: {e}", at(tokens[i].line)))?;
            if let Tok::Str(text) = &tokens[i].tok
                && brackets.contains(&true)
                && text
                    .split("::")
                    .all(|s| !s.is_empty() && s.chars().all(is_ident_char))
            {
                // A string in an attribute that is a path, as in
                // `#[serde(with = "crate::secs")]`.
                let inner = lex(text).map_err(|e| format!("{}: {e}", at(tokens[i].line)))?;
                named.extend(
                    named_at(&inner, 0, here)
                        .map_err(|e| format!("{}: {e}", at(tokens[i].line)))?,
                );
            }
            for name in named {
                for target in root.resolve(&name) {
                    if target != *top {
                        graph
                            .edges
                            .entry(top.clone())
                            .or_default()
                            .entry(target)
                            .or_default()
                            .push(Reference {
                                file: file.path.clone(),
                                line: tokens[i].line,
                                named: name.clone(),
                            });
                    }
                }
            }
        }
    }
    Ok(graph)
}

/// The groups of two or more modules that reach each other (strongly
/// connected components), each sorted; found by Tarjan's algorithm.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.edges.get(v).into_iter().flat_map(BTreeMap::keys) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    group.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found.sort();
    t.found
}

/// One line per cycle, then each reference inside it (at most three places
/// per pair of modules).
fn describe(crate_name: &str, graph: &Graph, groups: &[Vec<String>]) -> String {
    let mut out = String::new();
    for group in groups {
        let _ = writeln!(out, "{crate_name}: import cycle among {}", group.join(", "));
        for a in group {
            for (b, refs) in graph.edges.get(a).into_iter().flatten() {
                if !group.contains(b) {
                    continue;
                }
                let _ = write!(out, "  {a} -> {b} ({} reference(s)):", refs.len());
                for r in refs.iter().take(3) {
                    let _ = write!(out, " src/{}:{} crate::{}", r.file, r.line, r.named);
                }
                out.push('\n');
            }
        }
    }
    out
}

/// The hand-written files over [`MAX_LINES`], with their line counts.
fn too_long(files: &[SourceFile]) -> Vec<(String, usize)> {
    files
        .iter()
        .filter(|f| !f.path.ends_with("generated.rs"))
        .map(|f| (f.path.clone(), f.text.lines().count()))
        .filter(|&(_, n)| n > MAX_LINES)
        .collect()
}

// ---------------------------------------------------------------- the workspace

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// The workspace's members, read from its `Cargo.toml`.
fn members() -> Vec<String> {
    let manifest =
        std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("Cargo.toml");
    let list = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .expect("a `members = [..]` list in Cargo.toml")
        .0;
    let members: Vec<String> = list
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    for known in [
        "crates/tryon-api",
        "crates/tryon-client",
        "crates/tryon-mock",
        "crates/tryon-cli",
        "xtask",
    ] {
        assert!(
            members.iter().any(|m| m == known),
            "{known} not read from the workspace members: {members:?}"
        );
    }
    members
}

/// Every `.rs` file under a crate's `src/`, paths relative to `src/`.
fn crate_files(member: &str) -> Vec<SourceFile> {
    fn walk(dir: &Path, src: &Path, out: &mut Vec<SourceFile>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, src, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let rel = path
                    .strip_prefix(src)
                    .expect("under src/")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(SourceFile { path: rel, text });
            }
        }
    }
    let src = workspace_root().join(member).join("src");
    let mut files = Vec::new();
    walk(&src, &src, &mut files);
    assert!(!files.is_empty(), "{member}: no files under src/");
    files
}

// ---------------------------------------------------------------- tests

fn files(list: &[(&str, &str)]) -> Vec<SourceFile> {
    list.iter()
        .map(|(path, text)| SourceFile {
            path: (*path).to_owned(),
            text: (*text).to_owned(),
        })
        .collect()
}

#[test]
fn the_scan_finds_a_planted_cycle_and_names_each_reference() {
    // a -> b by a `use` group, b -> c through `super::` climbing out of b,
    // c -> a through a name the root re-exports: a cycle of three. d only
    // points into it.
    let krate = files(&[
        (
            "lib.rs",
            "mod a;\nmod b;\nmod c;\nmod d;\npub use a::{Thing as Renamed, Other};\n",
        ),
        (
            "a.rs",
            "use crate::{b::B, self};\npub struct Thing;\npub struct Other;\n",
        ),
        ("b/mod.rs", "mod inner;\npub struct B;\n"),
        ("b/inner.rs", "fn f() -> super::super::c::C { todo!() }\n"),
        (
            "c.rs",
            "pub struct C;\nfn g() {\n    let _ = format!(\"{:?}\", crate::Renamed);\n}\n",
        ),
        (
            "d.rs",
            "#[derive(serde::Serialize)]\nstruct D(#[serde(with = \"crate::a\")] u64);\n",
        ),
    ]);
    let g = graph(&krate).unwrap();
    assert_eq!(
        cycles(&g),
        vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]
    );
    let text = describe("demo", &g, &cycles(&g));
    assert!(text.contains("demo: import cycle among a, b, c"), "{text}");
    assert!(
        text.contains("a -> b (1 reference(s)): src/a.rs:1 crate::b"),
        "{text}"
    );
    assert!(
        text.contains("b -> c (1 reference(s)): src/b/inner.rs:1 crate::c"),
        "{text}"
    );
    assert!(
        text.contains("c -> a (1 reference(s)): src/c.rs:3 crate::Renamed"),
        "{text}"
    );
    assert!(!text.contains("d ->"), "d is in no cycle: {text}");
    // A path in an attribute's string is a reference: d uses a.
    assert_eq!(g.edges["d"]["a"][0].line, 2);

    // Two modules that use each other directly are a cycle too.
    let pair = files(&[
        ("main.rs", "mod x;\nmod y;\n"),
        ("x.rs", "use crate::y;\n"),
        ("y.rs", "fn f() { crate::x::g() }\n"),
    ]);
    assert_eq!(
        cycles(&graph(&pair).unwrap()),
        vec![vec!["x".to_owned(), "y".to_owned()]]
    );
}

#[test]
fn comments_strings_and_paths_inside_a_module_are_not_references() {
    let krate = files(&[
        ("lib.rs", "mod a;\nmod b;\npub use b::B;\n"),
        ("a.rs", "use crate::b::B;\npub struct A;\n"),
        (
            "b.rs",
            concat!(
                "//! See [`crate::a::A`]; /* crate::a */ /* nested /* crate::a */ */\n",
                "/// Links to [`crate::A`] are documentation, not imports.\n",
                "pub struct B<'a>(&'a str);\n",
                "const S: &str = \"crate::a\";\n#[doc = \"crate::a\"]\nconst T: u8 = 0;\n",
                "const R: &str = r#\"crate::a \" still a string\"#;\n",
                "const C: char = '{'; const Q: char = '\\''; const BYTES: &[u8] = b\"crate::a\";\n",
                "pub(crate) fn f() { let r#type = 1; let _ = r#type; }\n",
                "mod inner { use super::B; fn g() -> super::super::b::B { todo!() } }\n",
                "#[cfg(test)]\nmod tests { use super::*; }\n",
            ),
        ),
    ]);
    let g = graph(&krate).unwrap();
    assert!(
        cycles(&g).is_empty(),
        "{}",
        describe("demo", &g, &cycles(&g))
    );
    // The one real reference is there, and nothing else.
    let edges: Vec<(&str, &str)> = g
        .edges
        .iter()
        .flat_map(|(a, to)| to.keys().map(move |b| (a.as_str(), b.as_str())))
        .collect();
    assert_eq!(edges, [("a", "b")]);
}

#[test]
fn files_over_the_limit_are_named_and_generated_code_is_not() {
    let long = "x\n".repeat(MAX_LINES + 1);
    let at_limit = "x\n".repeat(MAX_LINES);
    let krate = files(&[
        ("lib.rs", &at_limit),
        ("big/part.rs", &long),
        ("generated.rs", &long),
    ]);
    assert_eq!(
        too_long(&krate),
        [("big/part.rs".to_owned(), MAX_LINES + 1)]
    );
}

#[test]
fn no_import_cycle_between_the_top_level_modules_of_any_crate() {
    let mut report = String::new();
    for member in members() {
        let g = graph(&crate_files(&member)).unwrap_or_else(|e| panic!("{member}: {e}"));
        report.push_str(&describe(&member, &g, &cycles(&g)));
    }
    assert!(
        report.is_empty(),
        "top-level modules that reference each other in a cycle:\n{report}"
    );
}

#[test]
fn no_hand_written_file_under_src_is_over_600_lines() {
    let mut over = Vec::new();
    for member in members() {
        for (path, lines) in too_long(&crate_files(&member)) {
            over.push(format!("{member}/src/{path}: {lines} lines"));
        }
    }
    assert!(
        over.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        over.join("\n")
    );
}
