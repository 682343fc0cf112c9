//! `HostConfig.Binds`, `Mounts` and `Tmpfs` onto the engine's mount specs.

use super::{given, refuse};
use crate::{ApiError, ApiResult};
use bollard_stubs::models::{Mount, MountBindOptionsPropagationEnum, MountType};
use engine::containers::options::{MountSource, MountSpec, TmpfsSpec};
use engine::containers::CreateOptions;
use std::collections::HashMap;

pub(super) fn apply(
    binds: Option<Vec<String>>,
    mounts: Option<Vec<Mount>>,
    tmpfs: Option<HashMap<String, String>>,
    o: &mut CreateOptions,
) -> ApiResult<()> {
    for b in binds.unwrap_or_default() {
        o.binds.push(
            MountSpec::parse_volume(&b)
                .map_err(|e| ApiError::bad(format!("HostConfig.Binds: {e}")))?,
        );
    }
    for (i, m) in mounts.unwrap_or_default().into_iter().enumerate() {
        o.mounts.push(
            mount(m)
                .map_err(|e| ApiError::bad(format!("HostConfig.Mounts[{i}]: {}", e.message)))?,
        );
    }
    let mut tmpfs: Vec<_> = tmpfs.unwrap_or_default().into_iter().collect();
    tmpfs.sort();
    for (target, opts) in tmpfs {
        let m = MountSpec {
            source: MountSource::Tmpfs(
                TmpfsSpec::parse(&opts)
                    .map_err(|e| ApiError::bad(format!("HostConfig.Tmpfs: {e}")))?,
            ),
            target,
            read_only: false,
        };
        m.check()
            .map_err(|e| ApiError::bad(format!("HostConfig.Tmpfs: {e}")))?;
        o.tmpfs.push(m);
    }
    Ok(())
}

/// One `Mount` object, every option honoured or refused.
fn mount(m: Mount) -> ApiResult<MountSpec> {
    let Mount {
        target,
        source,
        typ,
        read_only,
        consistency,
        bind_options,
        volume_options,
        image_options,
        tmpfs_options,
    } = m;
    let target = target.unwrap_or_default();
    let source = source.unwrap_or_default();
    // Consistency is a macOS file-sharing hint; on Linux every mode is the one behaviour.
    if !matches!(
        consistency.as_deref(),
        None | Some("" | "default" | "consistent" | "cached" | "delegated")
    ) {
        return Err(ApiError::bad(format!(
            "Consistency: invalid value {consistency:?}"
        )));
    }
    if given(&image_options) {
        return Err(refuse(
            "ImageOptions",
            image_options,
            "image mounts are not supported",
        ));
    }
    let kind = typ.unwrap_or(MountType::VOLUME);
    if kind != MountType::BIND && given(&bind_options) {
        return Err(ApiError::bad("BindOptions: only a bind mount takes them"));
    }
    if kind != MountType::VOLUME && given(&volume_options) {
        return Err(ApiError::bad(
            "VolumeOptions: only a volume mount takes them",
        ));
    }
    if kind != MountType::TMPFS && given(&tmpfs_options) {
        return Err(ApiError::bad("TmpfsOptions: only a tmpfs mount takes them"));
    }
    let source = match kind {
        MountType::BIND => {
            if let Some(b) = bind_options {
                if !matches!(
                    b.propagation,
                    None | Some(
                        MountBindOptionsPropagationEnum::EMPTY
                            | MountBindOptionsPropagationEnum::RPRIVATE
                    )
                ) {
                    return Err(refuse(
                        "BindOptions.Propagation",
                        b.propagation.map(|p| p.to_string()),
                        "binds are rprivate",
                    ));
                }
                for (field, v) in [
                    ("BindOptions.NonRecursive", b.non_recursive),
                    ("BindOptions.CreateMountpoint", b.create_mountpoint),
                    (
                        "BindOptions.ReadOnlyNonRecursive",
                        b.read_only_non_recursive,
                    ),
                    (
                        "BindOptions.ReadOnlyForceRecursive",
                        b.read_only_force_recursive,
                    ),
                ] {
                    if v == Some(true) {
                        return Err(refuse(
                            field,
                            true,
                            "binds are recursive and the source must exist",
                        ));
                    }
                }
            }
            if source.is_empty() {
                return Err(ApiError::bad("a bind mount needs a Source (a host path)"));
            }
            MountSource::Bind(source.into())
        }
        MountType::VOLUME => {
            if let Some(v) = volume_options {
                // NoCopy is what strata does anyway: a new volume starts empty.
                if given(&v.labels) {
                    return Err(refuse(
                        "VolumeOptions.Labels",
                        v.labels,
                        "create the volume with its labels first (POST /volumes/create)",
                    ));
                }
                if let Some(d) = &v.driver_config {
                    if !matches!(d.name.as_deref(), None | Some("" | "local")) || given(&d.options)
                    {
                        return Err(refuse(
                            "VolumeOptions.DriverConfig",
                            d,
                            "volumes are strata's local ones, without driver options",
                        ));
                    }
                }
                if given(&v.subpath) {
                    return Err(refuse(
                        "VolumeOptions.Subpath",
                        v.subpath,
                        "volumes are mounted whole",
                    ));
                }
            }
            if source.is_empty() {
                MountSource::Anonymous
            } else {
                MountSource::Volume(source)
            }
        }
        MountType::TMPFS => {
            if !source.is_empty() {
                return Err(ApiError::bad("a tmpfs mount takes no Source"));
            }
            let mut t = TmpfsSpec::default();
            if let Some(opts) = tmpfs_options {
                t.size = match opts.size_bytes.filter(|s| *s != 0) {
                    Some(s) if s < 0 => {
                        return Err(ApiError::bad("TmpfsOptions.SizeBytes: negative"))
                    }
                    s => s.map(|s| s as u64),
                };
                t.mode = match opts.mode.filter(|m| *m != 0) {
                    Some(m) if !(0..=0o7777).contains(&m) => {
                        return Err(ApiError::bad(
                            "TmpfsOptions.Mode: give permission bits (0 to 07777)",
                        ))
                    }
                    m => m.map(|m| m as u32),
                };
                for flag in opts.options.unwrap_or_default() {
                    let one = match flag.as_slice() {
                        [k] => k.clone(),
                        [k, v] => format!("{k}={v}"),
                        _ => {
                            return Err(ApiError::bad(
                                "TmpfsOptions.Options: give [flag] or [key, value] pairs",
                            ))
                        }
                    };
                    t.options.extend(
                        TmpfsSpec::parse(&one)
                            .map_err(|e| ApiError::bad(format!("TmpfsOptions.Options: {e}")))?
                            .options,
                    );
                }
            }
            MountSource::Tmpfs(t)
        }
        other => {
            return Err(refuse(
                "Type",
                other.to_string(),
                "strata mounts volumes, binds and tmpfs",
            ))
        }
    };
    let m = MountSpec {
        source,
        target,
        read_only: read_only.unwrap_or(false),
    };
    m.check()?;
    Ok(m)
}
