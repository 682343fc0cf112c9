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

/// Whether `path` matches the pattern components `pat`, where `**` stands for any number
/// of components. One pass with a single backtrack point (the last `**`), as for `*`
/// below: recursing at every `**` took time exponential in their number (a
/// `.dockerignore` a client sends could hang a build; found by fuzzing).
fn match_parts(pat: &[String], path: &[&str]) -> bool {
    star_match(
        pat.len(),
        path.len(),
        |i| pat[i] == "**",
        |i, j| component(pat[i].as_bytes(), path[j].as_bytes()),
    )
}

/// The matching loop both levels share: pattern items `0..np` over subject items
/// `0..ns`, where `is_star(i)` items match any run of subject items and `one(i, j)` says
/// whether pattern item `i` matches subject item `j`. Greedy with one backtrack point,
/// which is exact when every other item matches exactly one subject item: O(np * ns).
fn star_match(
    np: usize,
    ns: usize,
    is_star: impl Fn(usize) -> bool,
    one: impl Fn(usize, usize) -> bool,
) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    while si < ns {
        if pi < np && is_star(pi) {
            back = Some((pi + 1, si));
            pi += 1;
            continue;
        }
        if pi < np && one(pi, si) {
            pi += 1;
            si += 1;
            continue;
        }
        match back {
            Some((bp, bs)) => {
                pi = bp;
                si = bs + 1;
                back = Some((bp, bs + 1));
            }
            None => return false,
        }
    }
    while pi < np && is_star(pi) {
        pi += 1;
    }
    pi == np
}

/// One item of a component pattern.
enum Tok {
    Star,
    Any,
    Lit(u8),
    Class { negate: bool, ranges: Vec<(u8, u8)> },
}

impl Tok {
    fn matches(&self, c: u8) -> bool {
        match self {
            Tok::Star | Tok::Any => true,
            Tok::Lit(l) => *l == c,
            Tok::Class { negate, ranges } => {
                ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negate
            }
        }
    }
}

/// The items of a component pattern; `None` for a malformed one (an unterminated class),
/// which, as in Go, matches nothing.
fn tokens(mut p: &[u8]) -> Option<Vec<Tok>> {
    let mut out = Vec::with_capacity(p.len());
    while let Some(&c) = p.first() {
        p = &p[1..];
        out.push(match c {
            b'*' => Tok::Star,
            b'?' => Tok::Any,
            b'\\' if !p.is_empty() => {
                let l = p[0];
                p = &p[1..];
                Tok::Lit(l)
            }
            b'[' => {
                let ((negate, ranges), rest) = class(p)?;
                p = rest;
                Tok::Class { negate, ranges }
            }
            other => Tok::Lit(other),
        });
    }
    Some(out)
}

/// Go's `filepath.Match` for one component.
fn component(p: &[u8], s: &[u8]) -> bool {
    let Some(toks) = tokens(p) else {
        return false;
    };
    star_match(
        toks.len(),
        s.len(),
        |i| matches!(toks[i], Tok::Star),
        |i, j| toks[i].matches(s[j]),
    )
}

/// A parsed character class: whether it is negated, and its inclusive byte ranges.
type Class = (bool, Vec<(u8, u8)>);

/// A character class after its `[`, and the pattern after the `]` (`None` for an
/// unterminated class).
fn class(mut p: &[u8]) -> Option<(Class, &[u8])> {
    let negate = matches!(p.first(), Some(b'^') | Some(b'!'));
    if negate {
        p = &p[1..];
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let &lo = p.first()?;
        if lo == b']' && !first {
            return Some(((negate, ranges), &p[1..]));
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
        ranges.push((lo, hi));
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
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXbY"));
        assert!(glob_match("**/a/**/b", "x/a/y/z/b"));
        assert!(!glob_match("**/a/**/b", "x/a/y/z/c"));
        assert!(glob_match("*[!x]", "abc"));
        assert!(
            !glob_match("[a-", "a"),
            "an unterminated class matches nothing"
        );
    }
}

/// Regressions from `scripts/fuzz.sh` (target `dockerignore`).
#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    /// fuzz/artifacts/dockerignore/timeout-6906784d…: 73 stars against a short path took
    /// exponential time in the recursive matcher.
    #[test]
    fn many_stars_match_in_linear_time() {
        let t = std::time::Instant::now();
        let stars = "*".repeat(73);
        assert!(!glob_match(&format!("{stars}\x0c"), ".\x02..%G\x0c\x03;"));
        assert!(glob_match(&stars, "anything"));
        let many = vec!["**"; 60].join("/") + "/x";
        assert!(!glob_match(&many, &vec!["a"; 60].join("/")));
        assert!(glob_match(&many, &(vec!["a"; 60].join("/") + "/x")));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
    }
}
