//! `pgbox generate k8s`: CloudNativePG manifests from pgbox.toml, for the day a
//! project moves to Kubernetes.
//!
//! Targets CloudNativePG 1.25.x (`postgresql.cnpg.io/v1`). Every object is built
//! here as a JSON value, so the tests validate exactly what is written against the
//! JSON schemas in `tests/schemas/` (CloudNativePG's CRDs and the Kubernetes API
//! reference); [`yaml`] only turns the values into readable YAML. The files:
//! the `Cluster`, the app's `kubernetes.io/basic-auth` Secret (its own git-ignored
//! file, mode 0600; nothing else carries the password), a `Pooler` when a pooler is
//! configured, a `ScheduledBackup` (CloudNativePG's six-field cron) with the object
//! store as a commented template, the restore Job and its script (a pgbox backup,
//! `pg_restore -j`, row counts checked), the `bootstrap.initdb.import` alternative
//! and a README with the kubectl steps. A pgbox.toml setting that CloudNativePG has
//! no equivalent for is listed in the README and warned about when it is set.

pub mod yaml;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::{DeployEnv, GenFile};
use crate::config::{Settings, StorageMode, TlsMode};
use crate::schedule::expr::{ExprError, Schedule};

/// The CloudNativePG release the manifests and the test schemas are written for.
pub const CNPG_RELEASE: &str = "1.25";
/// CloudNativePG's own PostgreSQL images; the tag is the project's major.
pub const IMAGE_REPO: &str = "ghcr.io/cloudnative-pg/postgresql";
/// The PVC size of each instance: pgbox.toml has no size, so a starting point.
pub const STORAGE_SIZE: &str = "10Gi";
/// The file holding the app's credentials (git-ignored, mode 0600).
pub const SECRET_FILE: &str = "secret-app.yaml";

/// Parameters CloudNativePG manages itself (`FixedConfigurationParameters` in
/// pkg/postgres/configuration.go, 1.25: "fixed" and "blocked"); its webhook
/// refuses a Cluster that sets one.
pub const MANAGED_PARAMETERS: &[&str] = &[
    "allow_system_table_mods",
    "archive_cleanup_command",
    "archive_command",
    "archive_mode",
    "bonjour",
    "bonjour_name",
    "cluster_name",
    "config_file",
    "data_directory",
    "data_sync_retry",
    "event_source",
    "external_pid_file",
    "hba_file",
    "hot_standby",
    "ident_file",
    "jit_provider",
    "listen_addresses",
    "log_destination",
    "log_directory",
    "log_file_mode",
    "log_filename",
    "log_rotation_age",
    "log_rotation_size",
    "log_truncate_on_rotation",
    "logging_collector",
    "pg_failover_slots.primary_dsn",
    "pg_failover_slots.standby_slot_names",
    "port",
    "primary_conninfo",
    "primary_slot_name",
    "promote_trigger_file",
    "recovery_end_command",
    "recovery_min_apply_delay",
    "recovery_target",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_xid",
    "restart_after_crash",
    "restore_command",
    "shared_preload_libraries",
    "ssl",
    "ssl_ca_file",
    "ssl_cert_file",
    "ssl_crl_file",
    "ssl_dh_params_file",
    "ssl_ecdh_curve",
    "ssl_key_file",
    "ssl_passphrase_command",
    "ssl_passphrase_command_supports_reload",
    "ssl_prefer_server_ciphers",
    "stats_temp_directory",
    "synchronized_standby_slots",
    "synchronous_standby_names",
    "syslog_facility",
    "syslog_ident",
    "syslog_sequence_numbers",
    "syslog_split_messages",
    "temp_tablespaces",
    "unix_socket_directories",
    "unix_socket_group",
    "unix_socket_permissions",
];

/// PgBouncer's pool mode, as CloudNativePG's Pooler names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Transaction,
    Session,
}

/// What the Pooler needs from pgbox's `[pooler]` settings (wired at merge with the
/// pooler branch; a plain value so this renderer does not depend on its schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolerInput {
    pub mode: PoolMode,
    pub pool_size: u32,
    pub max_client_conn: u32,
}

/// Everything the k8s files are made from.
pub struct Input<'a> {
    pub settings: &'a Settings,
    pub env: DeployEnv,
    /// Cluster instances: 1 until pgbox has `[cluster] replicas`.
    pub instances: u32,
    pub pooler: Option<PoolerInput>,
    /// The pgbox schedule expression and where it came from (for the README).
    pub schedule: String,
    pub schedule_from: String,
    /// The pgbox backup the restore Job loads (a file name), if there is one.
    pub backup_file: Option<String>,
    /// The host the `bootstrap.initdb.import` alternative connects to.
    pub source_host: String,
    /// The command line, for the headers.
    pub command: String,
}

/// The rendered files; `secret` is written only when it does not exist yet.
pub struct Output {
    pub files: Vec<GenFile>,
    pub secret: GenFile,
    pub warnings: Vec<String>,
}

/// A pgbox schedule expression (cron, OnCalendar or a shorthand) as the six-field
/// cron CloudNativePG's ScheduledBackup takes (robfig/cron, seconds first).
pub fn six_field_cron(expr: &str) -> Result<String, ExprError> {
    Ok(format!("0 {}", Schedule::parse(expr)?.to_cron()?))
}

/// A Kubernetes object name (DNS-1123 label): lowercase, `-` for anything else.
pub fn object_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').chars().take(50).collect()
}

/// Unquote one postgresql.conf value (`'a''b'` -> `a'b`; bare values as they are).
fn unquote(v: &str) -> String {
    let v = v.trim();
    match v.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => v.to_string(),
    }
}

/// `postgresql.parameters`: the rendered postgresql.conf without what CloudNativePG
/// manages. Returns the parameters and the managed names that were left out.
pub fn parameters(s: &Settings) -> anyhow::Result<(BTreeMap<String, String>, Vec<String>)> {
    let conf = crate::server::conf::config_texts(s)?
        .into_iter()
        .find(|(n, _)| *n == "postgresql.conf")
        .map(|(_, t)| t)
        .unwrap_or_default();
    let mut params = BTreeMap::new();
    let mut left_out = Vec::new();
    for line in conf.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("include") {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim().to_string();
        if MANAGED_PARAMETERS.contains(&name.as_str()) {
            left_out.push(name);
            continue;
        }
        params.insert(name, unquote(value));
    }
    left_out.sort();
    left_out.dedup();
    Ok((params, left_out))
}

/// pgbox.toml settings CloudNativePG has no equivalent for: (setting, what to do).
pub const NO_EQUIVALENT: &[(&str, &str)] = &[
    ("[network] bind, port", "the Cluster is reached through its Services (`<cluster>-rw`, port 5432) inside Kubernetes; expose it with a Service or the Pooler"),
    ("[storage] mode, path, volume, uid, gid", "each instance gets a PersistentVolumeClaim (`spec.storage`); CloudNativePG runs PostgreSQL as UID 26"),
    ("[storage] save_interval, min_free_mb", "no fallback tarball and no free-space gate; size the PVC (`spec.storage.size`)"),
    ("[postgres] base_image", "CloudNativePG runs its own images (`imageName`)"),
    ("[postgres] conf_dir", "no include files; put the settings in `postgresql.parameters`"),
    ("[postgres] init_dir", "not run; use `bootstrap.initdb.postInitApplicationSQLRefs` with a ConfigMap"),
    ("[tls] mode, cert, key", "CloudNativePG always serves TLS with its own CA; bring your own with `spec.certificates`"),
    ("[backup] dir, format, compress, level", "CloudNativePG takes physical backups to an object store (ScheduledBackup)"),
    ("[backup] keep_last, keep_daily, keep_weekly, keep_monthly", "CloudNativePG keeps backups by age (`backup.retentionPolicy`, e.g. `30d`)"),
    ("[backup] encrypt_to", "no client-side encryption; use the object store's encryption (`backup.barmanObjectStore.data.encryption`)"),
    ("[backup] on_failure", "no hook; watch the Backup objects' status"),
    ("[backup] pitr", "WAL goes to the object store (`backup.barmanObjectStore`), not to the backup folder"),
    ("[backup.remote]", "fill in `backup.barmanObjectStore` in cluster.yaml (commented template)"),
];

/// The settings of `s` with no CloudNativePG equivalent that differ from pgbox's
/// defaults, each as (setting, why): these are warned about.
pub fn unmapped_settings(s: &Settings) -> Vec<(String, String)> {
    let d = Settings::resolve(&s.config_path, &[]);
    let why = |key: &str| {
        NO_EQUIVALENT
            .iter()
            .find(|(k, _)| k.contains(key))
            .map(|(_, w)| w.to_string())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let mut set = |name: &str, differs: bool, group: &str| {
        if differs {
            out.push((name.to_string(), why(group)));
        }
    };
    set("[network] bind", s.bind != d.bind, "bind, port");
    set("[network] port", s.port != d.port, "bind, port");
    set(
        "[storage] mode",
        !matches!(s.storage_mode, StorageMode::Auto),
        "mode, path",
    );
    set(
        "[storage] path",
        s.data_dir != s.project_dir.join(".pgbox/data"),
        "mode, path",
    );
    set(
        "[storage] volume",
        s.volume != format!("pgbox-{}-data", s.project),
        "mode, path",
    );
    set("[storage] uid", s.uid.is_some(), "mode, path");
    set("[storage] gid", s.gid.is_some(), "mode, path");
    set(
        "[storage] save_interval",
        s.save_interval != d.save_interval,
        "save_interval",
    );
    set(
        "[storage] min_free_mb",
        s.min_free_mb != d.min_free_mb,
        "save_interval",
    );
    set("[postgres] base_image", s.base_image_set, "base_image");
    set("[postgres] conf_dir", s.conf_dir.is_some(), "conf_dir");
    set("[postgres] init_dir", s.init_dir.is_some(), "init_dir");
    set("[tls] mode", s.tls != TlsMode::Off, "[tls]");
    set(
        "[tls] cert, key",
        s.tls_cert.is_some() || s.tls_key.is_some(),
        "[tls]",
    );
    set(
        "[backup] dir",
        s.backup_dir != s.project_dir.join("backups"),
        "dir, format",
    );
    set(
        "[backup] format",
        s.backup_format != d.backup_format,
        "dir, format",
    );
    set(
        "[backup] compress",
        s.backup_compress != d.backup_compress,
        "dir, format",
    );
    set("[backup] level", s.backup_level.is_some(), "dir, format");
    set(
        "[backup] keep_*",
        s.keep_last.is_some()
            || s.keep_daily != d.keep_daily
            || s.keep_weekly != d.keep_weekly
            || s.keep_monthly != d.keep_monthly,
        "keep_last",
    );
    set(
        "[backup] encrypt_to",
        !s.encrypt_to.is_empty(),
        "encrypt_to",
    );
    set("[backup] on_failure", s.on_failure.is_some(), "on_failure");
    set("[backup] pitr", s.pitr, "pitr");
    set("[backup.remote]", s.remote.is_some(), "[backup.remote]");
    out
}

fn labels(s: &Settings, env: &str) -> Value {
    json!({
        "app.kubernetes.io/part-of": object_name(&s.project),
        "app.kubernetes.io/managed-by": "pgbox",
        "pgbox.org/env": env,
    })
}

fn meta(name: &str, s: &Settings, env: &str) -> Value {
    json!({ "name": name, "labels": labels(s, env) })
}

/// The names every object refers to.
pub struct Names {
    pub cluster: String,
    pub secret: String,
    pub pooler: String,
    pub backup: String,
    pub restore: String,
    pub source_secret: String,
}

impl Names {
    pub fn new(s: &Settings, env: &str) -> Names {
        let cluster = object_name(&format!("{}-{env}", s.project));
        Names {
            secret: format!("{cluster}-app"),
            pooler: format!("{cluster}-pooler-rw"),
            backup: format!("{cluster}-daily"),
            restore: format!("{cluster}-restore"),
            source_secret: format!("{cluster}-pgbox-source"),
            cluster,
        }
    }
}

pub fn image(s: &Settings) -> String {
    format!("{IMAGE_REPO}:{}", s.pg_version)
}

/// The `bootstrap.initdb` stanza, with the `import` alternative when `import` is set.
fn initdb(s: &Settings, n: &Names, import: bool) -> Value {
    let mut i = json!({
        "database": s.database,
        "owner": s.user,
        "secret": { "name": n.secret },
        "encoding": "UTF8",
        "localeCollate": "C.UTF-8",
        "localeCType": "C.UTF-8",
        "dataChecksums": true,
    });
    if !s.extensions.is_empty() {
        i["postInitApplicationSQL"] = s
            .extensions
            .iter()
            .map(|e| {
                format!(
                    "CREATE EXTENSION IF NOT EXISTS \"{}\"",
                    e.replace('"', "\"\"")
                )
            })
            .collect();
    }
    if import {
        i["import"] = json!({
            "type": "microservice",
            "databases": [s.database],
            "source": { "externalCluster": "pgbox" },
        });
    }
    i
}

/// The Cluster; `import_from` makes the `bootstrap.initdb.import` alternative.
pub fn cluster(
    s: &Settings,
    env: &str,
    instances: u32,
    params: &BTreeMap<String, String>,
    import_from: Option<&str>,
) -> Value {
    let n = Names::new(s, env);
    let mut spec = json!({
        "instances": instances,
        "imageName": image(s),
        "enableSuperuserAccess": false,
        "postgresql": { "parameters": params },
        "bootstrap": { "initdb": initdb(s, &n, import_from.is_some()) },
        "storage": { "size": STORAGE_SIZE },
    });
    if let Some(b) = s.memory_limit {
        let mem = format!("{}Mi", b >> 20);
        spec["resources"] = json!({ "requests": { "memory": mem }, "limits": { "memory": mem } });
    }
    if let Some(host) = import_from {
        spec["externalClusters"] = json!([{
            "name": "pgbox",
            "connectionParameters": {
                "host": host,
                "port": s.port.to_string(),
                "user": s.user,
                "dbname": s.database,
                "sslmode": if s.tls == TlsMode::Off { "disable" } else { "require" },
            },
            "password": { "name": n.source_secret, "key": "password" },
        }]);
    }
    json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": meta(&n.cluster, s, env),
        "spec": spec,
    })
}

/// The Pooler (PgBouncer) in front of the Cluster's read-write service.
pub fn pooler(s: &Settings, env: &str, p: &PoolerInput) -> Value {
    let n = Names::new(s, env);
    json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Pooler",
        "metadata": meta(&n.pooler, s, env),
        "spec": {
            "cluster": { "name": n.cluster },
            "instances": 1,
            "type": "rw",
            "pgbouncer": {
                "poolMode": match p.mode { PoolMode::Transaction => "transaction", PoolMode::Session => "session" },
                "parameters": {
                    "default_pool_size": p.pool_size.to_string(),
                    "max_client_conn": p.max_client_conn.to_string(),
                },
            },
        },
    })
}

/// The ScheduledBackup for a six-field cron.
pub fn scheduled_backup(s: &Settings, env: &str, cron6: &str) -> Value {
    let n = Names::new(s, env);
    json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "ScheduledBackup",
        "metadata": meta(&n.backup, s, env),
        "spec": {
            "schedule": cron6,
            "cluster": { "name": n.cluster },
            "method": "barmanObjectStore",
            "backupOwnerReference": "self",
            "immediate": true,
        },
    })
}

/// The app's credentials: the Secret the Cluster's owner is created with.
pub fn secret(s: &Settings, env: &str, password: &str) -> Value {
    let n = Names::new(s, env);
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(&n.secret, s, env),
        "type": "kubernetes.io/basic-auth",
        "stringData": { "username": s.user, "password": password },
    })
}

/// The restore script, byte for byte as the ConfigMap carries it.
pub fn restore_script() -> anyhow::Result<String> {
    crate::templates::render(None, "deploy/k8s-restore.sh", ())
}

/// The ConfigMap holding the restore script, and the Job that runs it.
pub fn restore_objects(
    s: &Settings,
    env: &str,
    backup_file: &str,
) -> anyhow::Result<(Value, Value)> {
    let n = Names::new(s, env);
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(&n.restore, s, env),
        "data": { "restore.sh": restore_script()? },
    });
    let env_var = |k: &str, v: &str| json!({ "name": k, "value": v });
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(&n.restore, s, env),
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": { "labels": labels(s, env) },
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": { "runAsNonRoot": true, "runAsUser": 26, "runAsGroup": 26, "fsGroup": 26 },
                    "containers": [{
                        "name": "restore",
                        "image": image(s),
                        "command": ["sh", "/scripts/restore.sh"],
                        "env": [
                            env_var("PGHOST", &format!("{}-rw", n.cluster)),
                            env_var("PGPORT", "5432"),
                            env_var("PGDATABASE", &s.database),
                            env_var("PGSSLMODE", "require"),
                            env_var("BACKUP_FILE", backup_file),
                            env_var("RESTORE_JOBS", "2"),
                            env_var("WAIT_SECONDS", "3600"),
                            env_var("IMPORT_DIR", "/import"),
                            env_var("SECRET_DIR", "/etc/pgbox/app"),
                        ],
                        "volumeMounts": [
                            { "name": "script", "mountPath": "/scripts", "readOnly": true },
                            { "name": "app", "mountPath": "/etc/pgbox/app", "readOnly": true },
                            { "name": "import", "mountPath": "/import" },
                        ],
                    }],
                    "volumes": [
                        { "name": "script", "configMap": { "name": n.restore, "defaultMode": 0o555 } },
                        { "name": "app", "secret": { "secretName": n.secret, "defaultMode": 0o440 } },
                        { "name": "import", "emptyDir": { "sizeLimit": STORAGE_SIZE } },
                    ],
                },
            },
        },
    });
    Ok((cm, job))
}

fn header(h: &str, about: &str) -> String {
    format!("# {h}\n# {about}\n")
}

fn doc(objects: &[&Value]) -> String {
    objects
        .iter()
        .map(|o| yaml::to_yaml(o))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The object-store section, as a commented template inside cluster.yaml.
const OBJECT_STORE_TEMPLATE: &str = "\
# Backups (needed by scheduled-backup.yaml): uncomment, fill in and re-apply.
# The credentials Secret holds ACCESS_KEY_ID and ACCESS_SECRET_KEY:
#   kubectl create secret generic backup-creds --from-file=ACCESS_KEY_ID=./key-id --from-file=ACCESS_SECRET_KEY=./secret-key
#  backup:
#    retentionPolicy: \"30d\"
#    barmanObjectStore:
#      destinationPath: \"s3://BUCKET/PREFIX\"
#      endpointURL: \"https://s3.example.com\"
#      s3Credentials:
#        accessKeyId:
#          name: backup-creds
#          key: ACCESS_KEY_ID
#        secretAccessKey:
#          name: backup-creds
#          key: ACCESS_SECRET_KEY
#      wal:
#        compression: gzip
#      data:
#        compression: gzip
";

#[derive(Serialize)]
struct ReadmeVars<'a> {
    header: &'a str,
    project: &'a str,
    env: &'a str,
    release: &'a str,
    cluster: &'a str,
    secret: &'a str,
    pooler: Option<&'a str>,
    restore: &'a str,
    source_secret: &'a str,
    database: &'a str,
    user: &'a str,
    image: &'a str,
    pg_major: u32,
    schedule: &'a str,
    schedule_from: &'a str,
    cron6: &'a str,
    backup_file: &'a str,
    backup_path: String,
    has_backup: bool,
    source_host: &'a str,
    source_password_file: String,
    managed: Vec<String>,
    user_managed: Vec<String>,
    no_equivalent: Vec<(&'a str, &'a str)>,
    set_unmapped: Vec<(String, String)>,
    instances: u32,
}

/// Every file of `pgbox generate k8s`, rendered.
pub fn render(i: &Input, password: &str) -> anyhow::Result<Output> {
    let s = i.settings;
    let env = super::env_name(i.env);
    let n = Names::new(s, env);
    let h = format!(
        "Generated by pgbox {}: `{}`. Regenerate rather than edit. CloudNativePG {}.x",
        env!("CARGO_PKG_VERSION"),
        i.command,
        CNPG_RELEASE
    );
    let mut warnings = Vec::new();
    let (params, managed) = parameters(s)?;
    for (k, _) in &s.pg_settings {
        if MANAGED_PARAMETERS.contains(&k.as_str()) {
            warnings.push(format!(
                "`[postgres.settings] {k}` is managed by CloudNativePG and was left out of `postgresql.parameters`"
            ));
        }
    }
    let unmapped = unmapped_settings(s);
    for (k, why) in &unmapped {
        warnings.push(format!("`{k}` has no CloudNativePG equivalent: {why}"));
    }
    let cron6 = six_field_cron(&i.schedule).map_err(|e| {
        crate::error::Fail::new(format!(
            "the schedule `{}` ({}) cannot be written as CloudNativePG's cron: {e}",
            i.schedule, i.schedule_from
        ))
        .hint("install a schedule cron can express, e.g. `pgbox schedule install --at '0 2 * * *'`")
        .code(crate::error::EXIT_USAGE)
    })?;
    let mut files = Vec::new();
    let mut push = |path: &str, body: String| {
        files.push(GenFile {
            path: path.into(),
            body: body.into_bytes(),
            mode: 0o644,
        })
    };

    let c = cluster(s, env, i.instances, &params, None);
    push(
        "cluster.yaml",
        format!(
            "{}{}{OBJECT_STORE_TEMPLATE}",
            header(&h, &format!("The Cluster: PostgreSQL {} for `{}` ({env}). Apply after the operator and secret-app.yaml.", s.pg_version, s.project)),
            doc(&[&c])
        ),
    );
    let pooler_name = i.pooler.as_ref().map(|p| {
        let v = pooler(s, env, p);
        push(
            "pooler.yaml",
            format!(
                "{}{}",
                header(
                    &h,
                    &format!(
                        "PgBouncer in front of `{}-rw`: connect to the Service `{}`.",
                        n.cluster, n.pooler
                    )
                ),
                doc(&[&v])
            ),
        );
        n.pooler.as_str()
    });
    let sb = scheduled_backup(s, env, &cron6);
    push(
        "scheduled-backup.yaml",
        format!(
            "{}{}",
            header(&h, &format!("`{}` ({}) as CloudNativePG's six-field cron (seconds first). Needs the backup section of cluster.yaml filled in.", i.schedule, i.schedule_from)),
            doc(&[&sb])
        ),
    );
    let backup_file = i.backup_file.clone().unwrap_or_default();
    let (cm, job) = restore_objects(s, env, &backup_file)?;
    push(
        "restore-job.yaml",
        format!(
            "{}{}",
            header(&h, "Loads a pgbox backup into the new Cluster with pg_restore -j and checks the row counts; see README.md."),
            doc(&[&cm, &job])
        ),
    );
    let imp = cluster(s, env, i.instances, &params, Some(&i.source_host));
    push(
        "cluster-import.yaml",
        format!(
            "{}{}",
            header(&h, "The alternative to cluster.yaml + the restore Job: CloudNativePG imports from the running pgbox server (bootstrap.initdb.import). Use one or the other."),
            doc(&[&imp])
        ),
    );
    let readme = crate::templates::render(
        Some(&s.project_dir),
        "deploy/k8s-README.md.j2",
        ReadmeVars {
            header: &h,
            project: &s.project,
            env,
            release: CNPG_RELEASE,
            cluster: &n.cluster,
            secret: &n.secret,
            pooler: pooler_name,
            restore: &n.restore,
            source_secret: &n.source_secret,
            database: &s.database,
            user: &s.user,
            image: &image(s),
            pg_major: s.pg_version,
            schedule: &i.schedule,
            schedule_from: &i.schedule_from,
            cron6: &cron6,
            backup_file: if backup_file.is_empty() {
                "BACKUP_FILE"
            } else {
                &backup_file
            },
            backup_path: s
                .backup_dir
                .join(if backup_file.is_empty() {
                    "BACKUP_FILE"
                } else {
                    &backup_file
                })
                .display()
                .to_string(),
            has_backup: !backup_file.is_empty(),
            source_host: &i.source_host,
            source_password_file: s.secret_path().display().to_string(),
            managed,
            user_managed: s
                .pg_settings
                .iter()
                .filter(|(k, _)| MANAGED_PARAMETERS.contains(&k.as_str()))
                .map(|(k, _)| k.clone())
                .collect(),
            no_equivalent: NO_EQUIVALENT.to_vec(),
            set_unmapped: unmapped,
            instances: i.instances,
        },
    )?;
    push("README.md", readme);
    if backup_file.is_empty() {
        warnings.push(
            "no pgbox backup yet: the restore Job has an empty `BACKUP_FILE`; make one with `pgbox backup` and regenerate, or pass `--backup FILE`".into(),
        );
    }
    let secret = GenFile {
        path: SECRET_FILE.into(),
        body: format!(
            "{}{}",
            header(
                &h,
                "The app's credentials (git-ignored, mode 600). Never commit this file."
            ),
            yaml::to_yaml(&secret(s, env, password))
        )
        .into_bytes(),
        mode: 0o600,
    };
    Ok(Output {
        files,
        secret,
        warnings,
    })
}

/// The schedule the ScheduledBackup carries: the installed pgbox schedule, else
/// the default of `pgbox schedule install`; and where it came from.
fn pgbox_schedule(s: &Settings) -> anyhow::Result<(String, String)> {
    Ok(match crate::schedule::installed::Installed::read(s)? {
        Some(i) => (i.expression, "the installed pgbox schedule".into()),
        None => (
            "0 2 * * *".into(),
            "no schedule installed: the default of `pgbox schedule install`".into(),
        ),
    })
}

/// The file name of the backup the restore Job loads: `which` (a file or
/// `latest`), else the newest database backup, else none.
fn backup_file(s: &Settings, which: Option<&str>) -> anyhow::Result<Option<String>> {
    let path = match which {
        Some(w) => crate::backup::listing::resolve(s, w)?,
        None => match crate::backup::list(&s.backup_dir, &s.project)?
            .into_iter()
            .find(|e| e.manifest.kind == "database")
        {
            Some(e) => e.path,
            None => return Ok(None),
        },
    };
    Ok(path.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// The host the import alternative connects to: the bind address when it is a
/// specific, non-loopback one, else this machine's name.
fn source_host(s: &Settings) -> String {
    match s.bind.parse::<std::net::IpAddr>() {
        Ok(ip) if !ip.is_loopback() && !ip.is_unspecified() => ip.to_string(),
        Err(_) if !s.bind.is_empty() && s.bind != "localhost" => s.bind.clone(),
        _ => hostname(),
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match (rc, std::str::from_utf8(&buf[..end])) {
        (0, Ok(h)) if !h.is_empty() => h.to_string(),
        _ => "PGBOX_HOST".into(),
    }
}

/// The k8s files for `s` and `env`, with a fresh password for the Secret (written
/// only when the folder has none yet).
pub fn files(
    s: &Settings,
    env: DeployEnv,
    backup: Option<&str>,
    command: &str,
) -> anyhow::Result<Output> {
    let (schedule, schedule_from) = pgbox_schedule(s)?;
    let input = Input {
        settings: s,
        env,
        instances: 1,
        pooler: s.pooler.enabled.then_some(PoolerInput {
            mode: match s.pooler.mode {
                crate::config::PoolMode::Transaction => PoolMode::Transaction,
                crate::config::PoolMode::Session => PoolMode::Session,
            },
            pool_size: s.pooler.pool_size,
            max_client_conn: s.pooler.max_client_conn,
        }),
        schedule,
        schedule_from,
        backup_file: backup_file(s, backup)?,
        source_host: source_host(s),
        command: command.to_string(),
    };
    render(&input, &crate::secrets::generate_password())
}

/// `.gitignore` of the k8s folder.
pub const GITIGNORE: &str = "# The app's password: never commit it.\nsecret-app.yaml\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON schema of `kind` from tests/schemas/ (CloudNativePG 1.25.x, Kubernetes 1.30).
    fn validator(kind: &str) -> jsonschema::Validator {
        let file = match kind {
            "Cluster" => "cnpg-1.25-cluster.json",
            "Pooler" => "cnpg-1.25-pooler.json",
            "ScheduledBackup" => "cnpg-1.25-scheduledbackup.json",
            "Secret" => "k8s-1.30-secret.json",
            "ConfigMap" => "k8s-1.30-configmap.json",
            "Job" => "k8s-1.30-job.json",
            other => panic!("no schema for {other}"),
        };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/schemas")
            .join(file);
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    }

    fn errors(v: &Value) -> Vec<String> {
        let kind = v["kind"].as_str().unwrap();
        validator(kind)
            .iter_errors(v)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect()
    }

    fn settings(toml: &str) -> Settings {
        let path = std::path::Path::new("/work/shop/pgbox.toml");
        let layer = crate::config::parse_file(path, toml).unwrap();
        Settings::resolve(path, &[layer])
    }

    #[test]
    fn the_pooler_is_valid_and_a_wrong_mode_is_rejected() {
        let s = settings("[project]\nname = \"shop\"\n");
        for mode in [PoolMode::Transaction, PoolMode::Session] {
            let p = pooler(
                &s,
                "prod",
                &PoolerInput {
                    mode,
                    pool_size: 20,
                    max_client_conn: 200,
                },
            );
            assert_eq!(errors(&p), Vec::<String>::new());
        }
        let p = pooler(
            &s,
            "prod",
            &PoolerInput {
                mode: PoolMode::Transaction,
                pool_size: 20,
                max_client_conn: 200,
            },
        );
        insta::assert_snapshot!("k8s_pooler", yaml::to_yaml(&p));
        let mut wrong = p.clone();
        wrong["spec"]["pgbouncer"]["poolMode"] = json!("statement");
        assert!(
            errors(&wrong).iter().any(|e| e.contains("statement")),
            "{:?}",
            errors(&wrong)
        );
        let mut wrong = p.clone();
        wrong["spec"]["pgbouncer"]["poolSize"] = json!(20);
        assert!(!errors(&wrong).is_empty());
        let mut wrong = p;
        wrong["spec"]["pgbouncer"]["parameters"]["default_pool_size"] = json!(20);
        assert!(!errors(&wrong).is_empty(), "parameters are strings");
    }

    #[test]
    fn instances_is_a_parameter_and_zero_is_rejected() {
        let s = settings("[project]\nname = \"shop\"\n");
        let (params, _) = parameters(&s).unwrap();
        let c = cluster(&s, "dev", 3, &params, None);
        assert_eq!(c["spec"]["instances"], 3);
        assert_eq!(errors(&c), Vec::<String>::new());
        let c = cluster(&s, "dev", 0, &params, None);
        assert!(!errors(&c).is_empty());
    }

    #[test]
    fn managed_parameters_are_left_out_and_the_rest_kept() {
        let s = settings("[project]\nname = \"shop\"\n[backup]\npitr = true\n[tls]\nmode = \"self-signed\"\n[postgres.settings]\nport = 5433\nrandom_page_cost = 1.1\n");
        let (params, left_out) = parameters(&s).unwrap();
        for m in MANAGED_PARAMETERS {
            assert!(!params.contains_key(*m), "{m}");
        }
        for m in [
            "archive_mode",
            "archive_command",
            "ssl",
            "ssl_cert_file",
            "port",
            "hba_file",
        ] {
            assert!(left_out.iter().any(|l| l == m), "{m}: {left_out:?}");
        }
        assert_eq!(params["random_page_cost"], "1.1");
        assert_eq!(params["archive_timeout"], "60");
        let set: Vec<String> = unmapped_settings(&s).into_iter().map(|(k, _)| k).collect();
        assert_eq!(set, ["[tls] mode", "[backup] pitr"]);
    }

    #[test]
    fn every_schedule_form_becomes_six_fields() {
        for (expr, want) in [
            ("0 2 * * *", "0 0 2 * * *"),
            ("30 3 * * 1-5", "0 30 3 * * 1-5"),
            ("15 */6 * * *", "0 15 0,6,12,18 * * *"),
            ("0 4 1 * *", "0 0 4 1 * *"),
            ("0 1 * * sun", "0 0 1 * * 0"),
            ("@hourly", "0 0 * * * *"),
            ("@daily", "0 0 0 * * *"),
            ("@midnight", "0 0 0 * * *"),
            ("@weekly", "0 0 0 * * 0"),
            ("@monthly", "0 0 0 1 * *"),
            ("hourly", "0 0 * * * *"),
            ("daily", "0 0 0 * * *"),
            ("weekly", "0 0 0 * * 1"),
            ("monthly", "0 0 0 1 * *"),
            ("*-*-* 02:00:00", "0 0 2 * * *"),
            ("*-*-* 02:30", "0 30 2 * * *"),
            ("Mon..Fri 03:30", "0 30 3 * * 1-5"),
            ("Sat,Sun 04:00", "0 0 4 * * 0,6"),
            ("*-*-01 05:00:00", "0 0 5 1 * *"),
            ("*-06-15 06:45", "0 45 6 15 6 *"),
        ] {
            assert_eq!(six_field_cron(expr).unwrap(), want, "{expr}");
            assert_eq!(six_field_cron(expr).unwrap().split(' ').count(), 6);
        }
        // systemd ANDs a weekday with a day of month; cron (and robfig/cron) OR them.
        let e = six_field_cron("Mon *-*-01 02:00").unwrap_err();
        assert!(e.0.contains("cron cannot express"), "{e}");
        assert!(six_field_cron("0 2 * *").is_err());
    }

    #[test]
    fn object_names_are_dns_labels() {
        assert_eq!(object_name("My_App-dev"), "my-app-dev");
        assert_eq!(object_name("--a..b--"), "a-b");
    }

    #[test]
    fn quoted_values_are_unquoted() {
        assert_eq!(unquote("'it''s'"), "it's");
        assert_eq!(unquote(" 0.9"), "0.9");
    }
}
