//! `.dockerignore` and COPY/ADD source globs, with the rules Docker uses: Go's
//! `filepath.Match` per path component (`*`, `?`, `[a-z]`, `[^a]`, `\` escapes) plus `**`
//! for any number of directories; in `.dockerignore` a pattern also excludes everything
//! under a directory it matches, and the last pattern that matches decides (`!` lines
//! bring files back).

/// One compiled pattern.
#[derive(Debug, Clone)]
struct Pattern {
    parts: Vec<String>,
    exclusion: bool,
}

/// The patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// Cleans a pattern or path as Go's `filepath.Clean` does for relative paths, without a
/// leading `/`: `a//b/./c/` is `a/b/c`, `a/../b` is `b`.
pub fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

impl Ignore {
    /// Reads a `.dockerignore`'s text: one pattern per line, `#` comments, blank lines
    /// skipped, `!` for exceptions.
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, p) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let p = clean(p);
            if p.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                parts: p.split('/').map(str::to_string).collect(),
                exclusion,
            });
        }
        Ignore { patterns }
    }

    /// Whether the context path `rel` (relative, `/`-separated) is left out of the build.
    pub fn excluded(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let mut out = false;
        for p in &self.patterns {
            // The path itself or one of its parent directories.
            let hit = (1..=parts.len()).any(|n| match_parts(&p.parts, &parts[..n]));
            if hit {
                out = !p.exclusion;
            }
        }
        out
    }

    /// Whether an exception could bring back something under the excluded directory
    /// `rel`, so it must still be walked.
    pub fn may_include_under(&self, rel: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| p.exclusion && p.parts.join("/").starts_with(rel))
    }
}

/// Whether `path` (relative, `/`-separated) matches the glob `pattern` in full.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let pp: Vec<String> = clean(pattern).split('/').map(str::to_string).collect();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match_parts(&pp, &parts)
}

/// Whether a source names files by a pattern rather than a path.
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn match_parts(pat: &[String], path: &[&str]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|i| match_parts(&pat[1..], &path[i..])),
        Some(p) => match path.first() {
            Some(first) => {
                component(p.as_bytes(), first.as_bytes()) && match_parts(&pat[1..], &path[1..])
            }
            None => false,
        },
    }
}

/// Go's `filepath.Match` for one component.
fn component(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| component(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && component(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(&c) = s.first() else { return false };
            match class(&p[1..], c) {
                Some((ok, rest)) => ok && component(rest, &s[1..]),
                None => false,
            }
        }
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && component(&p[2..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && component(&p[1..], &s[1..]),
    }
}

/// Matches `c` against a character class after its `[`; returns whether it matched and
/// the pattern after the `]` (None for an unterminated class, which matches nothing).
fn class(mut p: &[u8], c: u8) -> Option<(bool, &[u8])> {
    let negate = matches!(p.first(), Some(b'^') | Some(b'!'));
    if negate {
        p = &p[1..];
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &lo = p.first()?;
        if lo == b']' && !first {
            return Some((matched != negate, &p[1..]));
        }
        first = false;
        let (lo, rest) = if lo == b'\\' {
            (*p.get(1)?, &p[2..])
        } else {
            (lo, &p[1..])
        };
        p = rest;
        let hi = if p.first() == Some(&b'-') && p.get(1).is_some_and(|&b| b != b']') {
            let (h, rest) = if p[1] == b'\\' {
                (*p.get(2)?, &p[3..])
            } else {
                (p[1], &p[2..])
            };
            p = rest;
            h
        } else {
            lo
        };
        if lo <= c && c <= hi {
            matched = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_rules() {
        let ig = Ignore::parse("# comment\n*.log\n!keep.log\nbuild/\n**/*.tmp\n/secret\n");
        assert!(ig.excluded("a.log"));
        assert!(!ig.excluded("keep.log"));
        assert!(!ig.excluded("dir/a.log"), "* does not cross directories");
        assert!(ig.excluded("build"));
        assert!(ig.excluded("build/x/y"), "under an excluded directory");
        assert!(ig.excluded("x.tmp"));
        assert!(ig.excluded("deep/er/x.tmp"));
        assert!(ig.excluded("secret"));
        assert!(!ig.excluded("src/main.rs"));
        let ig = Ignore::parse("docs\n!docs/keep.md\n");
        assert!(ig.excluded("docs/a.md"));
        assert!(!ig.excluded("docs/keep.md"));
        assert!(ig.may_include_under("docs"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("d/*.txt", "d/a.txt"));
        assert!(glob_match("file?.[a-c]", "file1.b"));
        assert!(!glob_match("file?.[^a-c]", "file1.b"));
        assert!(glob_match("**/x", "a/b/x"));
        assert!(glob_match("**/x", "x"));
        assert!(glob_match("a\\*b", "a*b"));
        assert!(!glob_match("a\\*b", "axb"));
        assert_eq!(clean("./a//b/../c/"), "c".replace('c', "a/c"));
    }
}
