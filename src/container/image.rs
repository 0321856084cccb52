//! The PostgreSQL image: built from the embedded templates on demand and tagged by
//! the hash of its build context, so an unchanged context is never built twice and
//! a changed template always is.

use std::collections::HashMap;

use crate::config::Settings;
use crate::engine::{Engine, LABEL_VERSION};
use crate::error::Fail;
use crate::printer::Printer;
use crate::templates::ImageContext;

/// Build the image unless one with the same content hash exists. Returns its tag.
pub async fn ensure_image(
    engine: &Engine,
    s: &Settings,
    p: &Printer,
    force: bool,
) -> anyhow::Result<String> {
    let ctx = ImageContext::for_settings(s)?;
    let what = format!("from `{}`", s.base_image);
    if let Some(took) = build_once(engine, &ctx, &what, force, p, |e| {
        Fail::new(format!("building image `{}` failed: {e}", ctx.tag)).hint(build_hint(s))
    })
    .await?
    {
        p.done(format!(
            "built image `{}` in {:.1}s",
            ctx.tag,
            took.as_secs_f64()
        ));
    }
    Ok(ctx.tag)
}

/// Build `ctx` unless an image with its tag exists (or `force`): one spinner
/// (`building image `TAG` WHAT`), pgbox's version label, the build's steps on the
/// spinner (every line with `-v`). Returns how long the build took, or None when
/// the image was there; a failed build is `failed(message)`.
pub async fn build_once(
    engine: &Engine,
    ctx: &ImageContext,
    what: &str,
    force: bool,
    p: &Printer,
    failed: impl FnOnce(String) -> Fail,
) -> anyhow::Result<Option<std::time::Duration>> {
    if !force && engine.image_exists(&ctx.tag).await? {
        p.detail(format!("image `{}` is up to date", ctx.tag));
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let bar = p.spinner(format!("building image `{}` {what}", ctx.tag));
    let labels = HashMap::from([(
        LABEL_VERSION.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )]);
    let result = engine
        .build_image(&ctx.tag, ctx.tar()?, &labels, |line| {
            if p.verbose() {
                p.verbose_line(&bar, line);
            } else if line.starts_with("Step ") {
                bar.set_message(format!("building image: {line}"));
            }
        })
        .await;
    bar.finish_and_clear();
    result.map_err(|e| failed(e.to_string()))?;
    Ok(Some(started.elapsed()))
}

/// What to check when the build failed. A `base_image` that is not the major's known
/// base is the likely cause (pgbox.toml files written before 17 and 18 were known
/// pin `debian:bookworm-slim`, which ships only 15), so that comes first.
fn build_hint(s: &Settings) -> String {
    let generic = format!(
        "check that base image `{}` exists locally or can be pulled, and that it can install PostgreSQL {}; `-v` shows the build output",
        s.base_image, s.pg_version
    );
    match crate::config::default_base_image(s.pg_version) {
        Some(known) if s.base_image_set && s.base_image != known => format!(
            "`base_image` is `{}`, but PostgreSQL {}'s known base is `{known}`: remove `base_image` from pgbox.toml to use it; otherwise {generic}",
            s.base_image, s.pg_version
        ),
        _ => generic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_pinned_base_of_another_major_is_named_first() {
        let f = crate::config::parse_file(
            Path::new("p"),
            "[postgres]\nversion = 17\nbase_image = \"debian:bookworm-slim\"\n",
        )
        .unwrap();
        let s = Settings::resolve(Path::new("/x/p/pgbox.toml"), &[f]);
        let h = build_hint(&s);
        assert!(
            h.starts_with("`base_image` is `debian:bookworm-slim`, but PostgreSQL 17's known base is `debian:trixie-slim`"),
            "{h}"
        );
        let s = Settings::resolve(Path::new("/x/p/pgbox.toml"), &[]);
        assert!(build_hint(&s).starts_with("check that base image"));
    }
}
