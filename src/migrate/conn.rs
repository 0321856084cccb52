//! The migration lock: a PostgreSQL advisory lock on a session of its own, so it is
//! held across the whole run whatever the working session does. On the project's
//! server that session is in the `postgres` database, because the template-copy
//! snapshot needs the target database free of sessions; with `--url` it is in the
//! target database. The connection itself is `crate::pgclient`'s.

use tokio_postgres::Client;

use crate::pgclient::Target;
use crate::printer::Printer;

/// Advisory lock keys: a constant class (`pgbx`) and the hash of the table name.
const LOCK_CLASS: i32 = 0x7067_6278;

/// Take the migration lock for `table` on a session of its own, saying so when
/// another run holds it and waiting for it.
pub async fn lock(target: &Target, table: &str, p: &Printer) -> anyhow::Result<Lock> {
    let db = if target.own.is_some() {
        "postgres"
    } else {
        &target.db
    };
    let client = target.connect_to(db).await?;
    let key = format!("{}:{table}", target.db);
    let got: bool = client
        .query_one(
            "select pg_try_advisory_lock($1, hashtext($2))",
            &[&LOCK_CLASS, &key],
        )
        .await?
        .get(0);
    if !got {
        p.info(format!(
            "waiting for another `pgbox migrate` run on `{}` to finish (it holds the migration lock)",
            target.describe()
        ));
        client
            .query_one(
                "select pg_advisory_lock($1, hashtext($2))",
                &[&LOCK_CLASS, &key],
            )
            .await?;
    }
    Ok(Lock { client })
}

/// The migration lock; released when the session ends (on drop, or when the
/// process dies, by the server).
pub struct Lock {
    pub client: Client,
}
