//! Issue 10, items 5, 6 and 8: SASLprep passwords, schedules under unusual paths,
//! and the smaller defects that each need a clear error or warning.

use std::process::Command;

use crate::support::*;

/// A changed password is applied by `up` as a SCRAM verifier; host psql (libpq
/// applies SASLprep) must then log in over TCP with the same password.
#[test]
fn changed_passwords_that_need_saslprep_still_log_in() {
    let p = Project::new("saslprep");
    p.init(&[]);
    let up = p.up();
    let url = text(&up.stdout).trim().to_string();
    let secret = p.path().join(".pgbox/secrets/postgres_password");
    let passwords = [
        "ｐａｓｓｗｏｒｄ",         // full-width letters: NFKC maps them to ASCII
        "\u{FB01}sh-and-chips",     // the `ﬁ` ligature
        "no\u{00A0}break",          // non-ASCII space U+00A0
        "ideographic\u{3000}space", // U+3000
        "plain-ascii-1",
        "bell\u{0007}char",    // prohibited: not valid SASLprep, used as raw bytes
        "unassigned\u{0378}x", // unassigned code point: raw bytes too
    ];
    for pw in passwords {
        std::fs::write(&secret, format!("{pw}\n")).unwrap();
        let out = p.up();
        assert!(
            text(&out.stderr).contains("applied the new password"),
            "{pw:?}: {}",
            text(&out.stderr)
        );
        let r = host_psql(&url, pw, "select 1");
        assert!(
            r.status.success(),
            "{pw:?}: TCP login failed after `up` applied it: {}",
            text(&r.stderr)
        );
        let bad = host_psql(&url, "not-it", "select 1");
        assert!(!bad.status.success(), "{pw:?}: a wrong password logged in");
    }
}

/// A project whose folder path holds a space, a `%` and a `'`.
fn awkward_project(tag: &str) -> Project {
    require_engine();
    let dir = tempfile::Builder::new()
        .prefix("pgbox e2e 100% it's-")
        .tempdir()
        .unwrap();
    Project {
        dir,
        name: format!("t{}-{tag}", std::process::id()),
        port: free_port(),
        eng: Eng::Docker,
        major: None,
    }
}

/// What cron hands to `/bin/sh -c` for the command part of a crontab line: `\%` is a
/// `%`; an unescaped `%` ends the command (the rest is stdin).
fn cron_command(line: &str) -> (String, Option<String>) {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start().split_once(char::is_whitespace).unwrap().1;
    }
    let (mut cmd, mut stdin) = (String::new(), None::<String>);
    let mut chars = rest.trim_start().chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\\' if chars.peek() == Some(&'%') => chars.next().unwrap(),
            '%' if stdin.is_none() => {
                stdin = Some(String::new());
                continue;
            }
            '%' => '\n',
            c => c,
        };
        stdin.as_mut().unwrap_or(&mut cmd).push(c);
    }
    (cmd, stdin)
}

/// systemd's reading of `ExecStart=` (systemd.service(5), "Command lines"): specifiers
/// (`%%` → `%`; any other `%x` is refused here), then words split on whitespace with
/// double or single quotes and C escapes, then `$$` → `$` in the arguments (never in
/// the executable; any other `$` is refused here, since systemd would expand it).
fn systemd_argv(value: &str) -> Vec<String> {
    let mut spec = String::new();
    let mut it = value.chars().peekable();
    while let Some(c) = it.next() {
        if c == '%' {
            assert_eq!(it.next(), Some('%'), "an unescaped specifier in {value}");
        }
        spec.push(c);
    }
    let mut words = Vec::new();
    let mut it = spec.chars().peekable();
    loop {
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        let Some(&first) = it.peek() else { break };
        let mut w = String::new();
        let quote = (first == '"' || first == '\'').then(|| it.next().unwrap());
        while let Some(c) = it.next() {
            match c {
                '\\' => match it.next().unwrap() {
                    'n' => w.push('\n'),
                    't' => w.push('\t'),
                    e => w.push(e),
                },
                c if Some(c) == quote => break,
                c if quote.is_none() && c.is_whitespace() => break,
                c => w.push(c),
            }
        }
        words.push(w);
    }
    for w in words.iter_mut().skip(1) {
        assert!(
            !w.replace("$$", "").contains('$'),
            "an unescaped `$` in {value}"
        );
        *w = w.replace("$$", "$");
    }
    words
}

#[test]
fn schedules_survive_paths_with_space_percent_and_quote() {
    let p = awkward_project("oddpath");
    // pgbox itself under such a path too (systemd refuses quotes in an executable path).
    let bindir = p.path().join("tools 50% o'clock");
    std::fs::create_dir_all(&bindir).unwrap();
    let pgbox_copy = bindir.join("pgbox");
    std::fs::copy(bin(), &pgbox_copy).unwrap();
    p.init(&[]);
    p.up();
    let config = p.path().canonicalize().unwrap().join("pgbox.toml");
    let backups = p.path().canonicalize().unwrap().join("backups");

    // cron: install into the real crontab, read the line back, run it as cron would.
    {
        let _g = crate::schedule::CRONTAB
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let _saved = crate::schedule::SavedCrontab::take();
        let mut install = pgbox(p.path());
        install.args([
            "--engine",
            "docker",
            "schedule",
            "install",
            "--using",
            "cron",
            "--at",
            "0 3 * * *",
            "--keep-last",
            "5",
        ]);
        install.env_remove("PGBOX_CONFIG");
        let mut c = Command::new(&pgbox_copy);
        c.args(install.get_args()).current_dir(p.path());
        c.env("XDG_CONFIG_HOME", p.path().join(".test-xdg"));
        ok(&mut c);
        let tab = text(&crate::schedule::crontab());
        let line = tab
            .lines()
            .skip_while(|l| !l.contains(&format!(">>> pgbox schedule: {} >>>", p.name)))
            .nth(1)
            .expect("the installed line")
            .to_string();
        let (cmd, stdin) = cron_command(&line);
        assert_eq!(stdin, None, "an unescaped `%` in {line}");
        let cwd = tempfile::tempdir().unwrap();
        let out = Command::new("/bin/sh")
            .args(["-c", &cmd])
            .current_dir(cwd.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", cwd.path())
            .env("SHELL", "/bin/sh")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the cron command failed: {cmd}\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            std::fs::read_dir(cwd.path()).unwrap().next().is_none(),
            "the cron command left a stray file in its working folder"
        );
        let log = std::fs::read_to_string(backups.join("pgbox-schedule.log"))
            .expect("the log in the backup folder");
        assert!(log.contains("schedule run: done"), "{log}");
        let list = ok(&mut p.cmd(&["backup", "list", "--json"]));
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
        assert_eq!(rows.len(), 1, "one backup from the cron run");
        ok(&mut p.cmd(&["schedule", "remove"]));
    }

    // systemd: units verify, and ExecStart reads back as the exact argv.
    let mut c = Command::new(&pgbox_copy);
    c.args([
        "--engine",
        "docker",
        "schedule",
        "install",
        "--using",
        "systemd",
        "--at",
        "daily",
        "--keep-last",
        "5",
    ])
    .current_dir(p.path())
    .env("XDG_CONFIG_HOME", p.path().join(".test-xdg"))
    .env("DOCKER_HOST", "unix:///var/run/docker.sock")
    .env("NO_COLOR", "1");
    ok(&mut c);
    let units = p.path().join(".test-xdg/systemd/user");
    let svc = units.join(format!("pgbox-backup-{}.service", p.name));
    let tmr = units.join(format!("pgbox-backup-{}.timer", p.name));
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args([&svc, &tmr])
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out.stderr).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&out.stderr)
    );
    let body = std::fs::read_to_string(&svc).unwrap();
    let exec = body
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let real_bin = pgbox_copy.canonicalize().unwrap().display().to_string();
    let cfg = config.display().to_string();
    assert_eq!(
        systemd_argv(exec),
        [
            "/usr/bin/env",
            &real_bin,
            "--config",
            &cfg,
            "schedule",
            "run",
            "--engine",
            "docker",
            "--keep-last",
            "5",
        ],
        "{exec}"
    );
    ok(&mut p.cmd(&["schedule", "remove"]));
}

#[test]
fn schedules_that_never_fire_are_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("pgbox.toml"), "[project]\nname = \"never\"\n").unwrap();
    for (at, using) in [("0 2 30 2 *", "cron"), ("*-02-30 02:00", "systemd")] {
        let out = run(pgbox(d.path()).args([
            "schedule",
            "install",
            "--dry-run",
            "--using",
            using,
            "--at",
            at,
        ]));
        assert_eq!(out.status.code(), Some(2), "{at}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains("never runs")
                && err.contains("day-of-month 30 does not occur in February"),
            "{at}: {err}"
        );
        assert!(out.stdout.is_empty(), "{at}: nothing is written");
    }
    let out = ok(pgbox(d.path()).args([
        "schedule",
        "install",
        "--dry-run",
        "--using",
        "cron",
        "--at",
        "0 0 29 2 *",
    ]));
    let err = text(&out.stderr);
    assert!(
        err.contains("the next run would be 20") && err.contains("-02-29 00:00"),
        "{err}"
    );
}

/// psql's own flags (`-h`, `-v`, `-q`) reach psql, and psql's exit code is pgbox's.
#[test]
fn psql_flags_pass_through() {
    let p = Project::new("psqlargs");
    p.init(&[]);
    p.up();
    let out = ok(&mut p.cmd(&[
        "psql",
        "-h",
        "/var/run/postgresql",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-At",
        "-c",
        "select inet_server_addr() is null, current_setting('server_version_num')::int > 0",
    ]));
    assert_eq!(text(&out.stdout).trim(), "t|t", "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("Usage: pgbox"));
    // A host psql cannot reach: psql's exit code 2, not pgbox's help with 0.
    let out = run(&mut p.cmd(&["psql", "-h", "/nonexistent", "-c", "select 1"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("/nonexistent"),
        "{}",
        text(&out.stderr)
    );
    // --db still picks the database; `pgbox help psql` still shows pgbox's help.
    let out = ok(&mut p.cmd(&[
        "psql",
        "--db",
        "postgres",
        "-At",
        "-c",
        "select current_database()",
    ]));
    assert_eq!(text(&out.stdout).trim(), "postgres");
    let out = ok(&mut p.cmd(&["help", "psql"]));
    assert!(text(&out.stdout).contains("Every argument after `psql` goes to psql"));
}

/// A user outside the `docker` group is told it is a permission problem and how to
/// fix it, not that no engine answered.
#[test]
fn docker_socket_permission_is_named_with_the_fix() {
    require_engine();
    let groups = Command::new("id")
        .args(["-nG", "pgboxtest"])
        .output()
        .expect("id");
    assert!(
        groups.status.success(),
        "the test user `pgboxtest` is missing: run `sudo scripts/ensure-rootless.sh`"
    );
    assert!(
        !text(&groups.stdout)
            .split_whitespace()
            .any(|g| g == "docker"),
        "`pgboxtest` must not be in the docker group for this test"
    );
    let as_user = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", "pgboxtest", "--"])
            .args(args)
            .output()
            .expect("runuser (this test runs as root)")
    };
    let probe = as_user(&["test", "-w", "/var/run/docker.sock"]);
    assert!(
        !probe.status.success(),
        "`pgboxtest` can write the Docker socket; the test would prove nothing"
    );
    let d = tempfile::tempdir().unwrap();
    let bin_copy = d.path().join("pgbox");
    std::fs::copy(bin(), &bin_copy).unwrap();
    std::fs::write(d.path().join("pgbox.toml"), "[project]\nname = \"perm\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_s = bin_copy.display().to_string();
    let cfg = d.path().join("pgbox.toml").display().to_string();
    for how in [
        vec![
            "env",
            "-u",
            "XDG_RUNTIME_DIR",
            "DOCKER_HOST=unix:///var/run/docker.sock",
            "NO_COLOR=1",
            &bin_s,
            "--config",
            &cfg,
            "status",
        ],
        vec![
            "env",
            "-u",
            "XDG_RUNTIME_DIR",
            "-u",
            "DOCKER_HOST",
            "NO_COLOR=1",
            &bin_s,
            "--config",
            &cfg,
            "--engine",
            "docker",
            "status",
        ],
    ] {
        let out = as_user(&how);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{how:?}: {err}");
        assert!(
            err.contains(
                "permission denied on the container engine's socket `unix:///var/run/docker.sock`"
            ) && err.contains("`root:docker` mode 660")
                && err.contains("sudo usermod -aG docker $USER")
                && err.contains("rootless"),
            "{how:?}: {err}"
        );
        assert!(!err.contains("no container engine answered"), "{err}");
    }
}

/// Manifests another user wrote (`sudo pgbox backup`, mode 0600) are named as
/// unreadable; `backup list` never says "no backups" beside backup files.
#[test]
fn unreadable_manifests_are_named_by_backup_list() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(d.path().join("pgbox.toml"), "[project]\nname = \"shop\"\n").unwrap();
    let backups = d.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    std::fs::set_permissions(&backups, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = backups.join("shop-shop-20260101T020000Z.dump.zst");
    std::fs::write(&file, b"(\xb5/\xfd").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let manifest = backups.join("shop-shop-20260101T020000Z.dump.zst.json");
    std::fs::write(&manifest, b"{}").unwrap();
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bin_copy = d.path().join("pgbox");
    std::fs::copy(bin(), &bin_copy).unwrap();
    let out = Command::new("runuser")
        .args(["-u", "pgboxtest", "--", "env", "NO_COLOR=1"])
        .arg(&bin_copy)
        .arg("--config")
        .arg(d.path().join("pgbox.toml"))
        .args(["backup", "list"])
        .output()
        .expect("runuser (this test runs as root, with the user from scripts/ensure-rootless.sh)");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot read 1 backup manifest(s)")
            && err.contains(&format!("`{}`: Permission denied", manifest.display()))
            && err.contains("sudo chown -R $USER"),
        "{err}"
    );
    assert!(!err.contains("no backups"), "{err}");
}

/// `down --purge` on a data folder that is a symlink refuses, naming link and
/// target; on a mount point it empties the folder and says why it stays.
#[test]
fn purge_names_symlinked_and_mounted_data_folders() {
    // A symbolic link: nothing is deleted through it.
    let p = Project::new("purgelink");
    p.init(&[]);
    let data = p.path().join(".pgbox/data");
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("pgdata");
    std::fs::create_dir(&target).unwrap();
    if data.exists() {
        std::fs::remove_dir_all(&data).unwrap();
    }
    std::os::unix::fs::symlink(&target, &data).unwrap();
    p.up();
    assert!(
        std::fs::read_dir(&target).unwrap().next().is_some(),
        "data went through the link"
    );
    let out = run(&mut p.cmd(&["down", "--purge", "--yes"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the data folder `{}` is a symbolic link to `{}`",
            data.display(),
            target.display()
        )) && err.contains("delete it yourself"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&target).unwrap().next().is_some(),
        "nothing deleted through the link"
    );
    std::fs::remove_file(&data).unwrap();
    let _ = Command::new("rm").arg("-rf").arg(&target).status();

    // A mount point: emptied, kept, and said so.
    let m = Project::new("purgemount");
    m.init(&[]);
    let data = m.path().join(".pgbox/data");
    std::fs::create_dir_all(&data).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "pgbox-test", &data.display().to_string()])
        .status()
        .expect("mount (this test runs as root)");
    assert!(st.success(), "mounting a tmpfs on the data folder failed");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _um = Unmount(data.clone());
    m.up();
    let out = run(&mut m.cmd(&["down", "--purge", "--yes"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("`{}` is a mount point", data.display())),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&data).unwrap().next().is_none(),
        "emptied"
    );
}

/// A non-loopback bind is warned about in `init`, `up` and `status`: with TLS off,
/// that passwords cross the network in clear and how to turn TLS on; with TLS on,
/// that the server is still reachable from the network.
#[test]
fn public_bind_is_warned_about_with_and_without_tls() {
    let p = Project::new("publicbind");
    let clear = "reachable from the network, with TLS off: passwords and data cross it in clear";
    let out = p.init(&["--bind", "0.0.0.0"]);
    let err = text(&out.stderr);
    assert!(
        err.contains(clear) && err.contains("mode = \"self-signed\""),
        "init: {err}"
    );
    let out = p.up();
    assert!(
        text(&out.stderr).contains(clear),
        "up: {}",
        text(&out.stderr)
    );
    let out = ok(&mut p.cmd(&["status"]));
    assert!(
        text(&out.stderr).contains(clear),
        "status: {}",
        text(&out.stderr)
    );

    let cfg = p.path().join("pgbox.toml");
    let toml = std::fs::read_to_string(&cfg).unwrap();
    assert!(toml.contains("mode = \"off\""), "{toml}");
    std::fs::write(
        &cfg,
        toml.replace("mode = \"off\"", "mode = \"self-signed\""),
    )
    .unwrap();
    let on = "reachable from the network (TLS is on";
    for args in [&["up"][..], &["status"][..]] {
        let out = ok(&mut p.cmd(args));
        let err = text(&out.stderr);
        assert!(err.contains(on) && !err.contains(clear), "{args:?}: {err}");
    }

    // The default loopback bind gets no such warning.
    let quiet = Project::new("loopbind");
    let out = quiet.init(&[]);
    assert!(!text(&out.stderr).contains("reachable from the network"));
}
