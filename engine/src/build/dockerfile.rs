//! Reading a Dockerfile as Docker's classic builder does: parser directives (`escape`,
//! `syntax`) at the top, comments, line continuations with the escape character,
//! instructions with their `--flags`, and the exec (JSON) or shell form of their
//! arguments. Every error names the line it is on. Heredocs are refused with a clear
//! error (the classic builder has none).

use crate::error::{EngineError, Result};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// The escape character (`\` or, with `# escape=``, a backtick).
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// The line it starts on (1-based).
    pub line: usize,
    /// Upper-case keyword: FROM, RUN, COPY, ...
    pub keyword: String,
    /// `--name=value` flags before the arguments, in order.
    pub flags: Vec<(String, String)>,
    pub args: Args,
    /// The instruction as written (continuations joined), for history and the cache key.
    pub original: String,
}

/// An instruction's arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Args {
    /// The exec form: a JSON array of strings.
    Json(Vec<String>),
    /// The shell form: the rest of the line.
    Text(String),
}

/// Keywords the classic builder knows.
pub const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// Keywords whose arguments may be a JSON array.
const JSON_FORMS: &[&str] = &["RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"];

fn bad(line: usize, why: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("Dockerfile line {line}: {why}"))
}

/// Parser directives: `# key=value` lines before anything else.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix('#')?;
    let (k, v) = rest.split_once('=')?;
    let k = k.trim().to_ascii_lowercase();
    if k.is_empty() || k.contains(char::is_whitespace) {
        return None;
    }
    Some((k, v.trim().to_string()))
}

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile> {
    let mut escape = '\\';
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    // Directives, until the first line that is not one.
    while i < lines.len() {
        let Some((k, v)) = directive(lines[i]) else {
            break;
        };
        if k == "escape" {
            escape = match v.as_str() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(bad(
                        i + 1,
                        format!("escape must be \\ or ` (a backtick), not {other:?}"),
                    ))
                }
            };
        }
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let start = i + 1;
        let first = lines[i].trim_start();
        i += 1;
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        // Joins continued lines; comment lines inside a continuation are dropped.
        let mut text = String::new();
        let mut cur = first.trim_end().to_string();
        while let Some(head) = cur.strip_suffix(escape) {
            text.push_str(head);
            // The next line that is neither a comment nor blank continues it.
            let next = lines[i..]
                .iter()
                .position(|l| {
                    let t = l.trim();
                    !t.is_empty() && !t.starts_with('#')
                })
                .map(|p| i + p);
            match next {
                Some(n) => {
                    cur = lines[n].trim_end().to_string();
                    i = n + 1;
                }
                None => {
                    i = lines.len();
                    cur = String::new();
                }
            }
        }
        text.push_str(&cur);
        instructions.push(instruction(start, text.trim())?);
    }
    Ok(Dockerfile {
        escape,
        instructions,
    })
}

/// One logical line into an instruction.
fn instruction(line: usize, text: &str) -> Result<Instruction> {
    let (word, mut rest) = match text.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim_start()),
        None => (text, ""),
    };
    let keyword = word.to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(bad(line, format!("unknown instruction {word}")));
    }
    if rest.contains("<<") && matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
        let heredoc = rest.split_whitespace().any(|w| {
            w.strip_prefix("<<")
                .map(|t| t.trim_start_matches('-').trim_matches(['"', '\'']))
                .is_some_and(|t| {
                    !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
        });
        if heredoc {
            return Err(bad(
                line,
                "heredocs (<<EOF) need BuildKit; strata builds as the classic builder: write the file into the context and COPY it",
            ));
        }
    }
    let mut flags = Vec::new();
    while let Some(f) = rest.strip_prefix("--") {
        let (flag, after) = match f.split_once(char::is_whitespace) {
            Some((a, b)) => (a, b.trim_start()),
            None => (f, ""),
        };
        let (k, v) = flag.split_once('=').unwrap_or((flag, ""));
        if k.is_empty() {
            break;
        }
        flags.push((k.to_string(), v.to_string()));
        rest = after;
    }
    if rest.is_empty() && keyword != "HEALTHCHECK" {
        return Err(bad(line, format!("{keyword} needs arguments")));
    }
    let args = if JSON_FORMS.contains(&keyword.as_str()) && rest.starts_with('[') {
        match serde_json::from_str::<Vec<String>>(rest) {
            Ok(v) => Args::Json(v),
            // Not valid JSON: Docker takes it as the shell form.
            Err(_) => Args::Text(rest.to_string()),
        }
    } else {
        Args::Text(rest.to_string())
    };
    Ok(Instruction {
        line,
        keyword,
        flags,
        args,
        original: text.to_string(),
    })
}

/// Replaces `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}` in `s` with
/// `lookup`'s values (unset is empty); the escape character keeps a `$` literal.
pub fn substitute(
    s: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
    line: usize,
) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == escape {
            match chars.peek() {
                Some('$') => {
                    out.push('$');
                    chars.next();
                }
                _ => out.push(c),
            }
            continue;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('{') => {
                chars.next();
                let mut body = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    body.push(c);
                }
                if !closed {
                    return Err(bad(line, format!("missing }} in ${{{body}")));
                }
                let (name, op) = match body.find(':') {
                    Some(p) => (&body[..p], Some(&body[p..])),
                    None => (body.as_str(), None),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(bad(line, format!("bad variable ${{{body}}}")));
                }
                let value = lookup(name).filter(|v| !v.is_empty());
                match op {
                    None => out.push_str(&value.unwrap_or_default()),
                    Some(o) if o.starts_with(":-") => match value {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&substitute(&o[2..], escape, lookup, line)?),
                    },
                    Some(o) if o.starts_with(":+") => {
                        if value.is_some() {
                            out.push_str(&substitute(&o[2..], escape, lookup, line)?);
                        }
                    }
                    Some(o) => {
                        return Err(bad(
                            line,
                            format!("unsupported modifier {o} in ${{{body}}}: use :- or :+"),
                        ))
                    }
                }
            }
            Some(n) if n.is_ascii_alphanumeric() || *n == '_' => {
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' {
                        name.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(&lookup(&name).unwrap_or_default());
            }
            _ => out.push('$'),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_flags_and_forms() {
        let df = parse(
            "# syntax=docker/dockerfile:1\n\
             FROM busybox:1 AS base\n\
             # a comment\n\
             RUN echo a \\\n\
             # dropped inside the continuation\n\
             \x20   && echo b\n\
             COPY --from=base --chown=1:1 [\"/a\", \"/b\"]\n\
             cmd [\"sh\", \"-c\", \"echo hi\"]\n\
             ENV A=1 B=\"two words\"\n",
        )
        .unwrap();
        let k: Vec<&str> = df.instructions.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(k, ["FROM", "RUN", "COPY", "CMD", "ENV"]);
        let run = &df.instructions[1];
        assert_eq!(run.line, 4);
        assert_eq!(run.args, Args::Text("echo a     && echo b".into()));
        let copy = &df.instructions[2];
        assert_eq!(
            copy.flags,
            vec![
                ("from".into(), "base".into()),
                ("chown".into(), "1:1".into())
            ]
        );
        assert_eq!(copy.args, Args::Json(vec!["/a".into(), "/b".into()]));
        assert_eq!(
            df.instructions[3].args,
            Args::Json(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
    }

    #[test]
    fn the_escape_directive_changes_the_continuation_character() {
        let df = parse("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  /w\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].args, Args::Text("dir c:\\   /w".into()));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("FROM scratch\n\nFROBNICATE x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("FROBNICATE"), "{e}");
        let e = parse("FROM scratch\nRUN\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("needs arguments"), "{e}");
        let e = parse("FROM scratch\nRUN <<EOF\necho\nEOF\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("heredocs"), "{e}");
        let e = parse("# escape=x\nFROM scratch\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        // `<<` that is not a heredoc (a shell here-string) is fine.
        assert!(parse("FROM scratch\nRUN cat <<< hi\n").is_ok());
    }

    #[test]
    fn variables_are_substituted_as_docker_does() {
        let vars = |k: &str| match k {
            "A" => Some("1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let sub = |s: &str| substitute(s, '\\', &vars, 1).unwrap();
        assert_eq!(sub("$A-${A}-$NONE-x"), "1-1--x");
        assert_eq!(sub("${NONE:-d}/${A:-d}/${EMPTY:-e}"), "d/1/e");
        assert_eq!(sub("${A:+set}/${NONE:+set}"), "set/");
        assert_eq!(sub("\\$A costs $"), "$A costs $");
        assert!(substitute("${A", '\\', &vars, 7)
            .unwrap_err()
            .to_string()
            .contains("line 7"));
        assert!(substitute("${A:?x}", '\\', &vars, 1).is_err());
    }
}
