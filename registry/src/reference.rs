//! Image references: `[REGISTRY/]NAME[:TAG|@sha256:DIGEST]`, read with the one grammar
//! of `layerstore::reference`, and what a registry needs of them.

use crate::error::{RegistryError, Result};

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` of the registry (Docker Hub is `docker.io`).
    pub registry: String,
    /// The repository, e.g. `library/busybox`.
    pub repository: String,
    /// A tag, when no digest is given (default `latest`).
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses a reference.
    pub fn parse(s: &str) -> Result<Reference> {
        let p = layerstore::reference::parse(s)
            .map_err(|_| RegistryError::BadReference(s.to_string()))?;
        let registry = p.domain.unwrap_or("docker.io").to_string();
        let repository = if registry == "docker.io" && !p.path.contains('/') {
            format!("library/{}", p.path)
        } else {
            p.path.to_string()
        };
        let tag = match (p.tag, p.digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest: p.digest.map(str::to_string),
        })
    }

    /// The tag or digest to ask the registry for.
    pub fn target(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The local name the image gets (`registry/repo:tag`), or none for a digest pull.
    pub fn local_name(&self) -> Option<String> {
        let tag = self.tag.as_ref()?;
        Some(format!("{}/{}:{tag}", self.registry, self.repository))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/busybox", Some("latest"))
        );
        let r = Reference::parse("127.0.0.1:5000/a/b:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "a/b", Some("v1"))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/x@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.tag, None);
        for bad in ["", "UPPER/case", "x@sha256:zz", "a b", "host:5000/x:"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
