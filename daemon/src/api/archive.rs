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
            let header = crate::base64::encode(serde_json::to_string(&st)?.as_bytes());
            crate::http::write_response(
                c.out,
                200,
                "",
                b"",
                &[("X-Docker-Container-Path-Stat", header)],
            )?;
            Ok(Reply::Written)
        }
        "GET" => {
            let work = super::staged(c.engine, "cp-out")?;
            let tar = super::staged(c.engine, "cp-out.tar")?;
            let st = c.engine.archive_get(id, &path, &work.path, &tar.path)?;
            let header = crate::base64::encode(serde_json::to_string(&st)?.as_bytes());
            let len = std::fs::metadata(&tar.path)?.len();
            let head = format!(
                "HTTP/1.1 200 OK\r\nServer: strata\r\nContent-Type: application/x-tar\r\nContent-Length: {len}\r\nX-Docker-Container-Path-Stat: {header}\r\n\r\n"
            );
            c.out.write_all(head.as_bytes())?;
            let mut f = std::fs::File::open(&tar.path)?;
            if std::io::copy(&mut f, c.out).is_err() {
                return Ok(Reply::Closed);
            }
            c.out.flush()?;
            Ok(Reply::Written)
        }
        _ => {
            let tar = super::stage_body(c, "cp-in.tar")?;
            let work = super::staged(c.engine, "cp-in")?;
            c.engine.archive_put(id, &path, &work.path, &tar.path)?;
            Ok(Reply::Empty(200))
        }
    }
}
