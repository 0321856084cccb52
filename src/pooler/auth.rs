//! The pooler's role and lookup function in the server, for `auth_query`.
//!
//! `pgbox_pooler` logs in, has no other right (no superuser, no database or role
//! creation, no inheritance, no replication, five connections at most) and may
//! only execute `pgbox_pooler.lookup(name)` in the `postgres` database (the
//! `auth_dbname`, untouched by restores). The function runs as its owner (the
//! project's superuser) and returns the SCRAM verifier of a login role that is not
//! a superuser, or of the project's own user. An expired role gets no verifier.
//!
//! The role's password is set as a SCRAM verifier computed here ([`crate::scram`]),
//! so the password itself never reaches the server, its logs or a process argument.

use crate::config::Settings;
use crate::container::psql;
use crate::engine::Engine;

use super::AUTH_USER;

/// The SQL that creates or refreshes the role and the function (psql; `generate`
/// writes it for deployments without pgbox).
pub fn sql(s: &Settings, verifier: &str) -> String {
    let role = psql::ident(AUTH_USER);
    let user = psql::lit(&s.user);
    let role_lit = psql::lit(AUTH_USER);
    let verifier = psql::lit(verifier);
    format!(
        r#"\set ON_ERROR_STOP 1
SET log_statement = 'none';
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {role_lit}) THEN
    CREATE ROLE {role};
  END IF;
END $$;
ALTER ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5 PASSWORD {verifier};
CREATE SCHEMA IF NOT EXISTS {role};
REVOKE ALL ON SCHEMA {role} FROM PUBLIC;
CREATE OR REPLACE FUNCTION {role}.lookup(p_user text, OUT usename name, OUT passwd text)
  RETURNS record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
    SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END
    FROM pg_authid
    WHERE rolname = p_user AND rolcanlogin AND (NOT rolsuper OR rolname = {user})
      AND rolname <> {role_lit}
$f$;
REVOKE ALL ON FUNCTION {role}.lookup(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA {role} TO {role};
GRANT EXECUTE ON FUNCTION {role}.lookup(text) TO {role};
"#
    )
}

/// Create or refresh the role (with the password from the auth file) and the
/// lookup function, in the running server `container`.
pub async fn ensure_role(
    engine: &Engine,
    container: &str,
    s: &Settings,
    password: &str,
) -> anyhow::Result<()> {
    let verifier = crate::scram::verifier(password);
    psql::sql(engine, container, s, "postgres", &sql(s, &verifier))
        .await
        .map_err(|e| {
            crate::error::Fail::new(format!(
                "cannot set up the pooler's role `{AUTH_USER}` in the server: {e:#}"
            ))
            .hint("`pgbox logs` shows the server's log; `pgbox up` tries again")
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn only_the_verifier_is_sent_and_superusers_stay_out() {
        let s = Settings::resolve(Path::new("/x/app/pgbox.toml"), &[]);
        let v = crate::scram::verifier("secret-password");
        let text = sql(&s, &v);
        assert!(!text.contains("secret-password"));
        assert!(text.contains(&format!("PASSWORD '{v}'")));
        assert!(text.contains("NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION"));
        assert!(text.contains("(NOT rolsuper OR rolname = 'app')"));
        assert!(text.contains("SECURITY DEFINER"));
    }
}
