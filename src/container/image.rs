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
    if !force && engine.image_exists(&ctx.tag).await? {
        p.detail(format!("image `{}` is up to date", ctx.tag));
        return Ok(ctx.tag);
    }
    let started = std::time::Instant::now();
    let bar = p.spinner(format!(
        "building image `{}` from `{}`",
        ctx.tag, s.base_image
    ));
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
    result.map_err(|e| {
        Fail::new(format!("building image `{}` failed: {e}", ctx.tag)).hint(format!(
            "check that base image `{}` exists locally or can be pulled, and that it can install PostgreSQL {}; `-v` shows the build output",
            s.base_image, s.pg_version
        ))
    })?;
    p.done(format!(
        "built image `{}` in {:.1}s",
        ctx.tag,
        started.elapsed().as_secs_f64()
    ));
    Ok(ctx.tag)
}
