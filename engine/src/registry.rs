//! Pull, push and login against OCI distribution registries.

use crate::error::{Context as _, EngineError, Result};
use crate::Engine;
use layerstore::import::Loaded;
use layerstore::spec::Platform;
use registry::auth::{default_path, AuthFile};
use registry::{Client, Reference};
use std::path::PathBuf;

/// How to reach a registry.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Verify TLS; `false` talks plain HTTP (a registry on loopback).
    pub tls_verify: bool,
    /// The credentials file (Docker's config.json `auths` format); default: Docker's.
    pub authfile: Option<PathBuf>,
    /// Credentials given with the request (a server's `X-Registry-Auth`); they win over
    /// the file.
    pub credentials: Option<(String, String)>,
}

impl Connection {
    fn authfile(&self) -> PathBuf {
        self.authfile.clone().unwrap_or_else(default_path)
    }

    fn client(&self, registry_host: &str) -> Result<Client> {
        let creds = match &self.credentials {
            Some(c) => Some(c.clone()),
            None => AuthFile::load(&self.authfile())?.get(registry_host),
        };
        Ok(Client::new(registry_host, self.tls_verify, creds))
    }
}

/// Reports download progress: (blob digest, bytes done, bytes total).
pub type PullProgress = registry::pull::Progress;

impl Engine {
    /// Pulls `reference` into the store; remembers where its layers came from, so a push
    /// to the same registry can mount them instead of uploading.
    pub fn pull(
        &self,
        reference: &str,
        platform: Option<Platform>,
        conn: &Connection,
        progress: Option<PullProgress>,
    ) -> Result<Loaded> {
        let r = Reference::parse(reference)?;
        let client = conn.client(&r.registry)?;
        let store = self.store()?;
        let opts = registry::pull::PullOptions {
            platform,
            progress,
            stream: true,
        };
        let loaded =
            registry::pull::pull(&store, &client, &r, &opts).ctx(|| format!("pull {reference}"))?;
        if let Ok(Some(img)) = store.images.get(loaded.id.hex()) {
            let layers: Vec<layerstore::Digest> = img
                .layers
                .iter()
                .filter_map(|c| store.layer(c).ok().map(|l| l.blob))
                .collect();
            registry::push::note_pulled(&store, &r.registry, &r.repository, &layers);
        }
        crate::events::record(
            &store.root,
            "image",
            "pull",
            &loaded.id.to_string(),
            reference,
        );
        Ok(loaded)
    }

    /// Pushes local image `image` to `destination` (default: its own name).
    pub fn push(
        &self,
        image: &str,
        destination: Option<&str>,
        conn: &Connection,
    ) -> Result<registry::push::PushReport> {
        let dest = destination.unwrap_or(image);
        let r = Reference::parse(dest)?;
        let client = conn.client(&r.registry)?;
        let store = self.store()?;
        let rep =
            registry::push::push(&store, &client, image, &r).ctx(|| format!("push {dest}"))?;
        crate::events::record(&store.root, "image", "push", image, dest);
        Ok(rep)
    }

    /// Checks credentials against `registry_host` without storing them (a server's
    /// `/auth`: the client keeps them).
    pub fn verify_login(
        &self,
        registry_host: &str,
        username: &str,
        password: &str,
        conn: &Connection,
    ) -> Result<()> {
        Client::new(
            registry_host,
            conn.tls_verify,
            Some((username.to_string(), password.to_string())),
        )
        .ping()
        .ctx(|| format!("login to {registry_host}"))?;
        Ok(())
    }

    /// Checks credentials against `registry_host` and stores them.
    pub fn login(
        &self,
        registry_host: &str,
        username: &str,
        password: &str,
        conn: &Connection,
    ) -> Result<()> {
        if username.is_empty() {
            return Err(EngineError::Invalid("give a user name".into()));
        }
        self.verify_login(registry_host, username, password, conn)?;
        let mut auth = AuthFile::load(&conn.authfile())?;
        auth.set(registry_host, username, password)?;
        Ok(())
    }
}
