//! `pgbox psql`: psql inside the server's container, so versions always match.
//!
//! A TTY is attached only when stdin and stdout are terminals; otherwise stdin is
//! streamed (so `pgbox psql < dump.sql` works) and psql's exit code is passed on.

use super::Ctx;
use crate::cli::PsqlArgs;
use crate::engine::ExecSpec;

pub async fn run(args: PsqlArgs, ctx: &Ctx<'_>) -> super::Outcome {
    let (s, engine) = (ctx.settings()?, ctx.engine().await?);
    let name = crate::container::ctl::ready(engine, s).await?;
    let mut cmd = vec![
        "psql".to_string(),
        "--username".into(),
        s.user.clone(),
        "--dbname".into(),
        args.db.unwrap_or_else(|| s.database.clone()),
    ];
    cmd.extend(args.args);
    let spec = ExecSpec {
        cmd,
        user: Some("postgres".into()),
        env: Vec::new(),
    };
    let code = engine.exec_attached(&name, &spec).await?;
    Ok(u8::try_from(code).unwrap_or(1))
}
