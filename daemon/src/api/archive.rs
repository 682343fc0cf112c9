//! `/containers/{id}/archive`: HEAD (stat), GET (a tar of a path), PUT (a tar into a
//! directory) — `docker cp` both ways.

use crate::router::{Call, Reply};
use crate::{ApiError, ApiResult};

pub fn handle(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let path = c
        .req
        .param("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad("give the path"))?
        .to_string();
    match c.req.method.as_str() {
        "HEAD" => {
            let st = c.engine.path_stat(id, &path)?;
            let header = super::base64_json(&st)?;
            Ok(Reply::Full {
                status: 200,
                content_type: "",
                headers: vec![("X-Docker-Container-Path-Stat", header)],
                body: Vec::new(),
            })
        }
        "GET" => {
            // Opened (and checked) before anything is sent, then streamed: nothing staged.
            let src = c.engine.archive_open(id, &path)?;
            let header = super::base64_json(&src.stat)?;
            super::stream_tar(
                c,
                &[("X-Docker-Container-Path-Stat", header)],
                &format!("cp {id}:{path}"),
                |w| src.write_to(w).map(drop),
            )
        }
        _ => {
            let tar = super::stage_body(c, "cp-in.tar")?;
            let work = super::staged(c.engine, "cp-in")?;
            c.engine.archive_put(id, &path, &work.path, &tar.path)?;
            Ok(Reply::Empty(200))
        }
    }
}
