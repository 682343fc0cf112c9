//! Docker's `--change` (commit and import): Dockerfile instructions that edit an image's
//! runtime config (`CMD`, `ENTRYPOINT`, `ENV`, `EXPOSE`, `LABEL`, `ONBUILD`, `USER`,
//! `VOLUME`, `WORKDIR`, `STOPSIGNAL`), parsed with Docker's quoting rules and checked
//! before anything is written.

use crate::error::{EngineError, Result};
use serde_json::{json, Map, Value};

/// One parsed change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Env(Vec<(String, String)>),
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
    Onbuild(String),
    User(String),
    Volume(Vec<String>),
    Workdir(String),
    StopSignal(String),
}

fn bad(line: &str, why: &str) -> EngineError {
    EngineError::Invalid(format!("--change {line:?}: {why}"))
}

/// Parses one change line, e.g. `CMD ["/bin/sh"]` or `ENV A=1 B="two words"`.
pub fn parse(line: &str) -> Result<Change> {
    let line = line.trim();
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (line, ""),
    };
    if rest.is_empty() {
        return Err(bad(line, "the instruction needs an argument"));
    }
    Ok(match word.to_ascii_uppercase().as_str() {
        "CMD" => Change::Cmd(command(rest)),
        "ENTRYPOINT" => Change::Entrypoint(command(rest)),
        "ENV" => Change::Env(pairs(line, rest)?),
        "LABEL" => Change::Label(pairs(line, rest)?),
        "EXPOSE" => {
            let mut ports = Vec::new();
            for w in words(line, rest)? {
                ports.extend(expose(line, &w)?);
            }
            Change::Expose(ports)
        }
        "ONBUILD" => Change::Onbuild(rest.to_string()),
        "USER" => Change::User(single(line, rest)?),
        "WORKDIR" => Change::Workdir(single(line, rest)?),
        "STOPSIGNAL" => Change::StopSignal(single(line, rest)?),
        "VOLUME" => Change::Volume(match json_array(rest) {
            Some(v) => v,
            None => words(line, rest)?,
        }),
        other => {
            return Err(bad(
                line,
                &format!("{other} cannot be changed: use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR or STOPSIGNAL"),
            ))
        }
    })
}

/// Parses every line, so one bad change refuses them all.
pub fn parse_all(lines: &[String]) -> Result<Vec<Change>> {
    lines.iter().map(|l| parse(l)).collect()
}

/// The exec form (a JSON array of strings) or the shell form (`/bin/sh -c TEXT`).
fn command(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
}

fn json_array(rest: &str) -> Option<Vec<String>> {
    if !rest.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(rest).ok()
}

fn single(line: &str, rest: &str) -> Result<String> {
    let w = words(line, rest)?;
    match w.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(bad(line, "takes exactly one argument")),
    }
}

/// Splits on unquoted whitespace; quotes group and are removed, a backslash escapes the
/// next character (outside single quotes), as Dockerfile words.
pub fn words(line: &str, s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => cur.push('\\'),
                }
            }
            q @ ('"' | '\'') => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(bad(line, "a quote is not closed")),
                        Some(c) if c == q => break,
                        Some('\\') if q == '"' => match chars.next() {
                            Some(n) => cur.push(n),
                            None => return Err(bad(line, "a quote is not closed")),
                        },
                        Some(c) => cur.push(c),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `K=V ...`, or the old single form `K V...` (the rest of the line is the value).
fn pairs(line: &str, rest: &str) -> Result<Vec<(String, String)>> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(line, "give KEY=VALUE (or KEY VALUE)"))?;
        let v = words(line, v.trim())?.join(" ");
        return Ok(vec![(k.to_string(), v)]);
    }
    let mut out = Vec::new();
    for w in words(line, rest)? {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| bad(line, &format!("{w:?} is not KEY=VALUE")))?;
        if k.is_empty() {
            return Err(bad(line, "a key is empty"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// `80`, `80/tcp`, `53/udp`, `8000-8002/tcp` as Docker's `PORT/PROTO` keys.
fn expose(line: &str, w: &str) -> Result<Vec<String>> {
    let (ports, proto) = w.split_once('/').unwrap_or((w, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad(
            line,
            &format!("{w:?}: the protocol is tcp, udp or sctp"),
        ));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| bad(line, &format!("{w:?} is not a port (1-65535)")))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if lo > hi {
        return Err(bad(line, &format!("{w:?}: the range is backwards")));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

fn object<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = config.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("made an object above")
}

fn array<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let v = config.entry(key).or_insert_with(|| json!([]));
    if !v.is_array() {
        *v = json!([]);
    }
    v.as_array_mut().expect("made an array above")
}

/// Applies `changes` in order to an image config's `config` object (Docker's
/// `Cmd`, `Env`, ... names).
pub fn apply(config: &mut Value, changes: &[Change]) {
    if !config.is_object() {
        *config = json!({});
    }
    let Some(c) = config.as_object_mut() else {
        return;
    };
    for ch in changes {
        match ch {
            Change::Cmd(v) => {
                c.insert("Cmd".into(), json!(v));
            }
            Change::Entrypoint(v) => {
                c.insert("Entrypoint".into(), json!(v));
            }
            Change::Env(kv) => {
                let env = array(c, "Env");
                // Replaced where it is, else appended, as Docker's ENV does.
                for (k, v) in kv {
                    let prefix = format!("{k}=");
                    let value = json!(format!("{k}={v}"));
                    match env
                        .iter_mut()
                        .find(|e| e.as_str().is_some_and(|s| s.starts_with(&prefix)))
                    {
                        Some(e) => *e = value,
                        None => env.push(value),
                    }
                }
            }
            Change::Label(kv) => {
                let labels = object(c, "Labels");
                for (k, v) in kv {
                    labels.insert(k.clone(), json!(v));
                }
            }
            Change::Expose(ports) => {
                let exposed = object(c, "ExposedPorts");
                for p in ports {
                    exposed.insert(p.clone(), json!({}));
                }
            }
            Change::Volume(paths) => {
                let vols = object(c, "Volumes");
                for p in paths {
                    vols.insert(p.clone(), json!({}));
                }
            }
            Change::Onbuild(t) => array(c, "OnBuild").push(json!(t)),
            Change::User(u) => {
                c.insert("User".into(), json!(u));
            }
            Change::Workdir(w) => {
                // A relative WORKDIR is relative to the one before, as in a Dockerfile.
                let base = c.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
                let dir = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{w}", base.trim_end_matches('/'))
                };
                c.insert("WorkingDir".into(), json!(dir));
            }
            Change::StopSignal(s) => {
                c.insert("StopSignal".into(), json!(s));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_instruction_with_dockers_quoting() {
        assert_eq!(
            parse(r#"CMD ["/bin/sh", "-c", "echo hi"]"#).unwrap(),
            Change::Cmd(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(
            parse("entrypoint top -b").unwrap(),
            Change::Entrypoint(vec!["/bin/sh".into(), "-c".into(), "top -b".into()])
        );
        assert_eq!(
            parse(r#"ENV A=1 B="two words" C=a\ b"#).unwrap(),
            Change::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "a b".into())
            ])
        );
        assert_eq!(
            parse("ENV PATH /usr/bin:/bin").unwrap(),
            Change::Env(vec![("PATH".into(), "/usr/bin:/bin".into())])
        );
        assert_eq!(
            parse("EXPOSE 80 53/udp 8000-8001").unwrap(),
            Change::Expose(vec![
                "80/tcp".into(),
                "53/udp".into(),
                "8000/tcp".into(),
                "8001/tcp".into()
            ])
        );
        assert_eq!(
            parse(r#"VOLUME ["/data", "/logs"]"#).unwrap(),
            Change::Volume(vec!["/data".into(), "/logs".into()])
        );
        assert_eq!(
            parse("USER 1000:1000").unwrap(),
            Change::User("1000:1000".into())
        );
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for l in [
            "RUN true",
            "FROM x",
            "CMD",
            "ENV A",
            "EXPOSE 99999",
            "EXPOSE 80/icmp",
            "ENV A=\"open",
            "USER a b",
            "LABEL =x",
        ] {
            assert!(parse(l).is_err(), "{l}");
        }
    }

    #[test]
    fn applies_in_order_over_the_existing_config() {
        let mut c = json!({"Env": ["PATH=/bin", "A=old"], "WorkingDir": "/srv"});
        let ch = parse_all(&[
            "ENV A=new".into(),
            "WORKDIR app".into(),
            "LABEL team=storage".into(),
            "EXPOSE 80".into(),
            "CMD [\"run\"]".into(),
        ])
        .unwrap();
        apply(&mut c, &ch);
        assert_eq!(c["Env"], json!(["PATH=/bin", "A=new"]));
        assert_eq!(c["WorkingDir"], "/srv/app");
        assert_eq!(c["Labels"]["team"], "storage");
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(c["Cmd"], json!(["run"]));
    }
}
