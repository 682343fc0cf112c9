//! The create body's `Config` fields (everything but `HostConfig` and
//! `NetworkingConfig`) onto the engine's options.

use super::{given, refuse};
use crate::{ApiError, ApiResult};
use bollard_stubs::models::{ContainerCreateBody, HostConfig, NetworkingConfig};
use engine::containers::health::HealthConfig;
use engine::containers::CreateOptions;

/// What the host part of the request still needs: its `HostConfig`, its
/// `NetworkingConfig`, and whether networking was turned off (`NetworkDisabled`).
pub(super) struct Rest {
    pub host: HostConfig,
    pub networking: NetworkingConfig,
    pub network_disabled: bool,
}

/// Fills `o` from the `Config` fields of `body`.
pub(super) fn apply(body: ContainerCreateBody, o: &mut CreateOptions) -> ApiResult<Rest> {
    let ContainerCreateBody {
        hostname,
        domainname,
        user,
        attach_stdin,
        attach_stdout,
        attach_stderr,
        exposed_ports,
        tty,
        open_stdin,
        stdin_once,
        env,
        cmd,
        healthcheck,
        args_escaped,
        image,
        volumes,
        working_dir,
        entrypoint,
        network_disabled,
        on_build,
        labels,
        stop_signal,
        stop_timeout,
        shell,
        host_config,
        networking_config,
    } = body;
    o.image = image
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad("config has no Image: give the image to run"))?;
    o.hostname = hostname.filter(|h| !h.is_empty());
    o.domainname = domainname.filter(|h| !h.is_empty());
    o.user = user.filter(|u| !u.is_empty());
    o.attach_stdin = attach_stdin.unwrap_or(false);
    o.attach_stdout = attach_stdout.unwrap_or(false);
    o.attach_stderr = attach_stderr.unwrap_or(false);
    o.expose = exposed_ports.unwrap_or_default();
    o.expose.sort();
    o.tty = tty.unwrap_or(false);
    o.open_stdin = open_stdin.unwrap_or(false);
    o.stdin_once = stdin_once.unwrap_or(false);
    o.env = env.unwrap_or_default();
    o.command = cmd.unwrap_or_default();
    o.entrypoint = entrypoint;
    o.workdir = working_dir.filter(|w| !w.is_empty());
    o.labels = labels.unwrap_or_default().into_iter().collect();
    o.stop_signal = stop_signal.filter(|s| !s.is_empty());
    o.stop_timeout = match stop_timeout {
        None => None,
        Some(t) => Some(u64::try_from(t).map_err(|_| {
            ApiError::bad(format!(
                "StopTimeout: {t} is negative: give the seconds to wait before SIGKILL"
            ))
        })?),
    };
    if let Some(h) = healthcheck {
        let v = serde_json::to_value(h).map_err(|e| ApiError::bad(e.to_string()))?;
        o.healthcheck = HealthConfig::from_json(&v)?;
    }
    if args_escaped == Some(true) {
        return Err(refuse(
            "ArgsEscaped",
            true,
            "it applies to Windows containers only",
        ));
    }
    if given(&on_build) {
        return Err(refuse(
            "OnBuild",
            on_build,
            "ONBUILD triggers belong to image builds (a Dockerfile), not to a container",
        ));
    }
    if given(&shell) {
        return Err(refuse(
            "Shell",
            shell,
            "SHELL belongs to image builds (a Dockerfile); give the command as Cmd",
        ));
    }
    if network_disabled == Some(true) {
        o.as_given.insert("NetworkDisabled".into(), true.into());
    }
    o.anonymous_volumes = volumes.unwrap_or_default();
    o.anonymous_volumes.sort();
    Ok(Rest {
        host: host_config.unwrap_or_default(),
        networking: networking_config.unwrap_or_default(),
        network_disabled: network_disabled.unwrap_or(false),
    })
}
