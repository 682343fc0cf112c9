//! The one grammar of image references, Docker's (distribution's `reference` package):
//! `[DOMAIN/]PATH[:TAG][@DIGEST]`. Local names ([`crate::refs::normalize`]) and registry
//! references (`registry::Reference`) are both read through it, so a name one accepts the
//! other never refuses.
//!
//! - DOMAIN: the first component when it has a `.` or a `:` (a port), or is `localhost`:
//!   letters, digits, `-` and `.`, then an optional `:PORT`.
//! - PATH: components of lowercase letters and digits, joined inside a component by one
//!   `.`, one or two `_`, or any number of `-`; components separated by `/`.
//! - TAG: up to 128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
//! - DIGEST: `sha256:` and 64 hex digits.
//! - The name (DOMAIN/PATH) is at most 255 characters.

/// A reference split into its parts (borrowed from the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    pub domain: Option<&'a str>,
    pub path: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

/// Why a reference is not one, in words for the user.
pub type Why = &'static str;

/// Splits and checks `s`.
pub fn parse(s: &str) -> Result<Parts<'_>, Why> {
    if s.is_empty() {
        return Err("a reference cannot be empty");
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            let hex = d
                .strip_prefix("sha256:")
                .ok_or("digests are sha256:<64 hex digits>")?;
            if hex.len() != 64
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err("digests are sha256:<64 lowercase hex digits>");
            }
            (r, Some(d))
        }
        None => (s, None),
    };
    // A tag is after the last `:` that has no `/` after it (a port's has).
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if name.is_empty() || name.len() > 255 {
        return Err("the name must be 1-255 characters");
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, p)) if first.contains(['.', ':']) || first == "localhost" => (Some(first), p),
        _ => (None, name),
    };
    if let Some(d) = domain {
        if !valid_domain(d) {
            return Err("a registry is host[:port]: letters, digits, - and .");
        }
    }
    if path.is_empty() || !path.split('/').all(valid_component) {
        return Err(
            "names are lowercase letters and digits, joined by . _ __ or - and separated by /",
        );
    }
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !t.starts_with(['.', '-']);
        if !ok {
            return Err("tags are up to 128 of [A-Za-z0-9_.-], not starting with . or -");
        }
    }
    Ok(Parts {
        domain,
        path,
        tag,
        digest,
    })
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or `-+`, then an alphanumeric.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_grammar() {
        let p = parse("busybox").unwrap();
        assert_eq!(
            (p.domain, p.path, p.tag, p.digest),
            (None, "busybox", None, None)
        );
        let p = parse("127.0.0.1:5000/a/b-c__d.e:v1.0").unwrap();
        assert_eq!(
            (p.domain, p.path, p.tag),
            (Some("127.0.0.1:5000"), "a/b-c__d.e", Some("v1.0"))
        );
        let p = parse("localhost/x").unwrap();
        assert_eq!(p.domain, Some("localhost"));
        let d = format!("sha256:{}", "a".repeat(64));
        let text = format!("x/y:t@{d}");
        let p = parse(&text).unwrap();
        assert_eq!((p.tag, p.digest), (Some("t"), Some(d.as_str())));
        for bad in [
            "",
            "UPPER",
            "a b",
            "x:",
            "x:-t",
            "_x",
            "x_",
            "a___b",
            "a..b",
            "a//b",
            "host:5000/x:",
            "x@sha256:zz",
            "bad_host:5000/x",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was taken");
        }
        assert!(parse(&"a".repeat(256)).is_err());
    }
}
