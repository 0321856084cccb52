# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_pgbox_global_optspecs
    string join \n q/quiet v/verbose color= json config= engine= h/help V/version
end

function __fish_pgbox_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_pgbox_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_pgbox_using_subcommand
    set -l cmd (__fish_pgbox_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c pgbox -n "__fish_pgbox_needs_command" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_needs_command" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_needs_command" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_needs_command" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_needs_command" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_needs_command" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_needs_command" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_needs_command" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "init" -d 'Create pgbox.toml, a generated password and the data folder'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "build" -d 'Build the PostgreSQL image from the embedded templates'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "up" -d 'Start PostgreSQL and wait until it accepts connections'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "down" -d 'Stop PostgreSQL gracefully; data is kept'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "status" -d 'Show the state of this project\'s server (exit 0 only when healthy)'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "logs" -d 'Show the server\'s log'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "psql" -d 'Open psql inside the container, or run it with arguments'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "url" -d 'Print the connection string on stdout'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "ls" -d 'List every pgbox-managed container on this host'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "backup" -d 'Dump a database to the backup folder; `list`, `verify` and `prune` manage backups'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "restore" -d 'Restore a backup: into a scratch database first, swapped in only on success'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "schedule" -d 'Scheduled backups with cron or systemd: install, list, status, remove, run'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "generate" -d 'Write deployment files: compose, podman, quadlet, kube, containerfile, or all'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "save" -d 'Fallback storage: save the running cluster to pgsql.tar.zst now'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "maintenance" -d 'Stop PostgreSQL but keep the container up for repairs (`on`), or resume (`off`)'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "upgrade" -d 'Move the data to a newer PostgreSQL major, with a backup first and a rollback'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "migrate" -d 'Numbered SQL migrations: new, up, status, down, repair, rollback, adopt'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "stats" -d 'One screen on the server: load, sizes, vacuum, top queries, locks, backups, advice'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "top" -d 'A live view of sessions and queries, refreshed every second'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "metrics" -d 'Serve Prometheus metrics (postgres_exporter names plus `pgbox_*`) in the foreground'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "switchover" -d 'Cluster: move the leader to another node (`[cluster] replicas`)'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "completions" -d 'Print a shell completion script on stdout'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "man" -d 'Print the man page (roff) on stdout'
complete -c pgbox -n "__fish_pgbox_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l name -d 'Project name, used for the container and volume names' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l port -d 'Host port PostgreSQL is published on (default: 5432, or the next free one)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l bind -d 'Address the port is published on' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l storage -d 'Storage mode' -r -f -a "auto\t''
direct\t''
fallback\t''
volume\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l data-dir -d 'Data folder for direct mode, relative to the project folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l base-image -d 'Base image the PostgreSQL image is built from [default: a Debian release that ships the major; official `postgres:<major>` images work too]' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l pg-version -d 'PostgreSQL major version: 15, 17 or 18 (another needs --base-image) [default: 15]' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l tls -d 'TLS for connections from outside the container' -r -f -a "off\t''
self-signed\t''
files\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l cert -d 'With `--tls files`: the certificate (chain) file, e.g. fullchain.pem' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l key -d 'With `--tls files`: the private key file, e.g. privkey.pem' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l password-stdin -d 'Read the password from stdin instead of generating one'
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -s y -l yes -d 'Accept defaults for everything not given as a flag'
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l force -d 'Rewrite pgbox.toml even when it exists (the password and data are kept)'
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand init" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand build" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand build" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand build" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand build" -l force -d 'Build even when an image with the same content hash exists'
complete -c pgbox -n "__fish_pgbox_using_subcommand build" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand build" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand build" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand build" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand build" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand up" -l timeout -d 'Seconds to wait for PostgreSQL to accept connections' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand up" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand up" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand up" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand up" -l dry-run -d 'Validate the image, settings and data location in a throwaway container; change nothing'
complete -c pgbox -n "__fish_pgbox_using_subcommand up" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand up" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand up" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand up" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand up" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand down" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand down" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand down" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand down" -l rm -d 'Remove the container after stopping it (data is kept)'
complete -c pgbox -n "__fish_pgbox_using_subcommand down" -l purge -d 'Remove the container and delete the data (asks first)'
complete -c pgbox -n "__fish_pgbox_using_subcommand down" -s y -l yes -d 'Do not ask for confirmation'
complete -c pgbox -n "__fish_pgbox_using_subcommand down" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand down" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand down" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand down" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand down" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand status" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand status" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand status" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand status" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand status" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand status" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand status" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand status" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand logs" -s n -l tail -d 'Number of lines from the end (`all` for everything)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand logs" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand logs" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand logs" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand logs" -s f -l follow -d 'Keep following the log'
complete -c pgbox -n "__fish_pgbox_using_subcommand logs" -s t -l timestamps -d 'Prefix each line with the engine\'s timestamp'
complete -c pgbox -n "__fish_pgbox_using_subcommand logs" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand logs" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand logs" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand logs" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand logs" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand psql" -l db -d 'Database to connect to (default: the project database); must come first' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand psql" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand psql" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand psql" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand psql" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand psql" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand psql" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand url" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand url" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand url" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand url" -l with-password -d 'Include the password in the URL'
complete -c pgbox -n "__fish_pgbox_using_subcommand url" -l pooled -d 'The URL through the pooler (`[pooler]` in pgbox.toml)'
complete -c pgbox -n "__fish_pgbox_using_subcommand url" -l replica -d 'Cluster: a URL that reaches a read-only replica'
complete -c pgbox -n "__fish_pgbox_using_subcommand url" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand url" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand url" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand url" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand url" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand ls" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand ls" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand ls" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand ls" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand ls" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand ls" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand ls" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand ls" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l db -d 'Database to dump (default: the project database)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l format -d 'Dump format (default: pgbox.toml `[backup] format`, else custom)' -r -f -a "custom\t''
plain\t''
directory\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l compress -d 'Compression, applied inside the container (default: pgbox.toml `[backup] compress`, else zstd)' -r -f -a "zstd\t''
gzip\t''
none\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l level -d 'Compression level (zstd 1-19, default 3; gzip 1-9, default 6; or pgbox.toml `[backup] level`)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -s o -l output -d 'Output file or folder (`-` for stdout); default: the backup folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l all -d 'The globals (roles) and every database, one file each'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l verify -d 'Verify the new backup with pg_restore --list right away'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l base -d 'A base backup for point-in-time recovery (pg_basebackup, checked with pg_verifybackup) into `<backup dir>/base/`; needs `[backup] pitr = true`'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l remote-only -d 'Stream the dump straight to `[backup.remote]` (encrypted with `encrypt_to`), keeping no local copy'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l local-only -d 'Keep the backup here only, even with `[backup.remote]` configured'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -f -a "list" -d 'List backups: time, database, size, age, verified'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -f -a "verify" -d 'Check a backup\'s checksum and run pg_restore --list on it'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -f -a "prune" -d 'Delete backups the retention policy does not keep (asks first)'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -f -a "sync" -d 'Ship every base backup and archived WAL file not yet off-site (PITR)'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and not __fish_seen_subcommand_from list verify prune sync help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from list" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from list" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from list" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from list" -l remote -d 'The backups in `[backup.remote]` instead of the backup folder'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from list" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -l identity -d 'The age identity file that decrypts the backup (for `--remote --deep`)' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -l remote -d 'Verify a backup in `[backup.remote]`: its stored bytes against the manifest (no key needed); with `--deep`, also downloaded, decrypted and test-restored'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -l deep -d 'Also restore into a scratch database and compare row counts per table'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -l pitr -d 'Check the WAL archive instead: no gap from any base backup to the newest segment, every recorded sha256; prints the recoverable window'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -l keep-last -d 'Keep the N newest backups (default: pgbox.toml `[backup]`)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -l keep-daily -d 'Keep one backup a day for N days (default: pgbox.toml, else 7)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -l keep-weekly -d 'Keep one backup a week for N weeks (default: pgbox.toml, else 4)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -l keep-monthly -d 'Keep one backup a month for N months (default: pgbox.toml, else 6)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -l remote -d 'Prune `[backup.remote]` by its own policy (`[backup.remote] keep_*`) instead'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -s y -l yes -d 'Delete without asking'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -l dry-run -d 'Show what would be deleted and delete nothing'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from prune" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from sync" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from sync" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from sync" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from sync" -l remote -d 'To `[backup.remote]` (encrypted with `encrypt_to`); the only destination'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from sync" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from sync" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from sync" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from sync" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from sync" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "list" -d 'List backups: time, database, size, age, verified'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Check a backup\'s checksum and run pg_restore --list on it'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Delete backups the retention policy does not keep (asks first)'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "sync" -d 'Ship every base backup and archived WAL file not yet off-site (PITR)'
complete -c pgbox -n "__fish_pgbox_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l db -d 'Database to replace (default: the one in the backup\'s manifest, else the project database)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l into -d 'Restore into a new database NEW instead, next to the existing ones' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l jobs -d 'Parallel pg_restore jobs (default: the number of CPUs)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l from-remote -d 'Restore a backup from `[backup.remote]`: `latest` or a name from `pgbox backup list --remote`; with `--to-*`, recover from the base backups and WAL shipped by `backup sync --remote` (no name)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l identity -d 'The age identity file (private key) that decrypts an encrypted backup' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l to-time -d 'Point-in-time recovery to this moment (UTC unless a zone is given: `2026-11-27 14:02:00`, `2026-11-27 15:02:00+01:00`); needs `[backup] pitr`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l to-lsn -d 'Point-in-time recovery to this WAL position (`0/3000060`)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l timeout -d 'Point-in-time recovery: how long replaying the WAL may take, in seconds' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l port -d 'With `--into-new`: the host port of the recovered copy (default: the first free one after the project\'s)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l no-owner -d 'Do not restore ownership (for roles that do not exist here)'
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l drop-old -d 'Drop the replaced database instead of keeping it renamed aside'
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -s y -l yes -d 'Do not ask for confirmation'
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l to-latest -d 'Point-in-time recovery to the newest archived WAL'
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l into-new -d 'Point-in-time recovery into a new cluster beside the project\'s, on another port, to inspect and copy rows back; the project\'s data and server are untouched'
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l discard-new -d 'Remove the copy `--into-new` made: stop its container and delete its data'
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand restore" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -f -a "install" -d 'Install a timer (systemd) or crontab entry that backs up, verifies and prunes'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -f -a "list" -d 'Every pgbox schedule on this host (this user\'s and the system\'s)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -f -a "status" -d 'Last run, next run and the newest good backup; non-zero when something is wrong'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -f -a "remove" -d 'Remove this project\'s crontab entry or timer'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -f -a "run" -d 'What the timer runs: backup, verify, prune, record (no TTY, no prompts)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and not __fish_seen_subcommand_from install list status remove run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l at -d 'When: cron (`0 2 * * *`), OnCalendar (`*-*-* 02:00:00`, `Mon..Fri 03:30`) or @daily etc' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l using -d 'Mechanism: systemd when it runs as PID 1, else cron' -r -f -a "auto\t''
systemd\t''
cron\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l keep-last -d 'Keep the N newest backups (default: pgbox.toml `[backup]`)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l keep-daily -d 'Keep one backup a day for N days (default: pgbox.toml, else 7)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l keep-weekly -d 'Keep one backup a week for N weeks (default: pgbox.toml, else 4)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l keep-monthly -d 'Keep one backup a month for N months (default: pgbox.toml, else 6)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l randomized-delay -d 'systemd: spread the start over up to this many seconds' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l user -d 'Install for this user (the default)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l system -d 'Install system-wide (/etc/systemd/system or /etc/cron.d)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l dry-run -d 'Print the exact files or crontab lines and write nothing'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from install" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from list" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from list" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from list" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from list" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from status" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from status" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from status" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from status" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from remove" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from remove" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from remove" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from remove" -l dry-run -d 'Print what would be removed and remove nothing'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from remove" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from remove" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from remove" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from remove" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -l keep-last -d 'Keep the N newest backups (default: pgbox.toml `[backup]`)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -l keep-daily -d 'Keep one backup a day for N days (default: pgbox.toml, else 7)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -l keep-weekly -d 'Keep one backup a week for N weeks (default: pgbox.toml, else 4)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -l keep-monthly -d 'Keep one backup a month for N months (default: pgbox.toml, else 6)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from run" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "install" -d 'Install a timer (systemd) or crontab entry that backs up, verifies and prunes'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "list" -d 'Every pgbox schedule on this host (this user\'s and the system\'s)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "status" -d 'Last run, next run and the newest good backup; non-zero when something is wrong'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove this project\'s crontab entry or timer'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "run" -d 'What the timer runs: backup, verify, prune, record (no TTY, no prompts)'
complete -c pgbox -n "__fish_pgbox_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -l env -d 'Environment: isolated names, volumes, ports and password per environment' -r -f -a "dev\t''
prod\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -s o -l output -d 'Output folder (default: deploy/<env>, for k8s deploy/k8s-<env>, in the project folder)' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -l backup -d 'k8s: the pgbox backup the restore Job loads: a file or `latest` (default: the newest)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -l force -d 'Overwrite files that differ (a summary of the changes is shown)'
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -l publish -d 'Publish the port in prod too (dev always publishes it on the bind address)'
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand generate" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand save" -s o -l output -d 'Write a consistent copy of the running cluster to PATH instead (pg_basebackup tar, zstd; any storage mode); for getting the data out when the data folder is full' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand save" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand save" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand save" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand save" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand save" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand save" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand save" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand save" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand maintenance" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand maintenance" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand maintenance" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand maintenance" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand maintenance" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand maintenance" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand maintenance" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand maintenance" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l to -d 'The major to move to (15, 17 or 18; newer than the current one)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l method -d 'How to make the new cluster: dump (safe, default) or pg_upgrade\'s link, clone or copy' -r -f -a "dump\t'The new major\'s pg_dump and pg_restore -j: safe across C libraries (default)'
link\t'pg_upgrade --link: fastest; the old cluster is unusable once the new one starts'
clone\t'pg_upgrade --clone: copy-on-write file clones, where the file system has them'
copy\t'pg_upgrade --copy: copies every file'"
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l base-image -d 'Base image of the new major when pgbox.toml names one pgbox cannot map' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l jobs -d 'Parallel jobs for pg_dump and pg_restore (default: the number of CPUs, at most 4)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l timeout -d 'Seconds to wait for each server to accept connections' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l check -d 'Run the checks only, print the report, change nothing'
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l finalize -d 'End the upgrade: delete the old data (asks first)'
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l rollback -d 'Return to the old major and the old data (asks first; drops writes made since)'
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -s y -l yes -d 'Confirm without asking'
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pgbox -n "__fish_pgbox_using_subcommand upgrade" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -l url -d 'Any PostgreSQL instead of the project\'s server (`postgres://user:pass@host:port/db`); prefer `DATABASE_URL`, which keeps the password out of process listings' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -l dir -d 'The migrations folder [default: `[migrations] dir`, else `migrations`]' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -f -a "new" -d 'Write `<dir>/<UTC timestamp>_<name>.sql` with an up and a down section'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -f -a "up" -d 'Apply pending migrations in version order, after a snapshot'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -f -a "status" -d 'Show each migration: applied or pending, when, how long, checksum (`--json`)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -f -a "down" -d 'Run down sections, newest first (the last one, or down to `--to`)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -f -a "repair" -d 'Record the checksums of edited applied files, after showing the diff'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -f -a "rollback" -d 'Put the database back to the snapshot taken before the last `up`'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -f -a "adopt" -d 'Import the history table of dbmate, sqlx or golang-migrate'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and not __fish_seen_subcommand_from new up status down repair rollback adopt help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from new" -l url -d 'Any PostgreSQL instead of the project\'s server (`postgres://user:pass@host:port/db`); prefer `DATABASE_URL`, which keeps the password out of process listings' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from new" -l dir -d 'The migrations folder [default: `[migrations] dir`, else `migrations`]' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from new" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from new" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from new" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from new" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from new" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from new" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from new" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from new" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -l to -d 'Apply up to and including this version' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -l url -d 'Any PostgreSQL instead of the project\'s server (`postgres://user:pass@host:port/db`); prefer `DATABASE_URL`, which keeps the password out of process listings' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -l dir -d 'The migrations folder [default: `[migrations] dir`, else `migrations`]' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -l dry-run -d 'Print what would be applied; change nothing'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -l no-snapshot -d 'Do not take the snapshot `rollback` returns to'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from up" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from status" -l url -d 'Any PostgreSQL instead of the project\'s server (`postgres://user:pass@host:port/db`); prefer `DATABASE_URL`, which keeps the password out of process listings' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from status" -l dir -d 'The migrations folder [default: `[migrations] dir`, else `migrations`]' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from status" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from status" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from status" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from status" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -l to -d 'Revert every migration newer than this version (`0`: all)' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -l url -d 'Any PostgreSQL instead of the project\'s server (`postgres://user:pass@host:port/db`); prefer `DATABASE_URL`, which keeps the password out of process listings' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -l dir -d 'The migrations folder [default: `[migrations] dir`, else `migrations`]' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -l dry-run -d 'Print what would be reverted; change nothing'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from down" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from repair" -l url -d 'Any PostgreSQL instead of the project\'s server (`postgres://user:pass@host:port/db`); prefer `DATABASE_URL`, which keeps the password out of process listings' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from repair" -l dir -d 'The migrations folder [default: `[migrations] dir`, else `migrations`]' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from repair" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from repair" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from repair" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from repair" -s y -l yes -d 'Confirm without asking'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from repair" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from repair" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from repair" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from repair" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from repair" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from rollback" -l url -d 'Any PostgreSQL instead of the project\'s server (`postgres://user:pass@host:port/db`); prefer `DATABASE_URL`, which keeps the password out of process listings' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from rollback" -l dir -d 'The migrations folder [default: `[migrations] dir`, else `migrations`]' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from rollback" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from rollback" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from rollback" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from rollback" -s y -l yes -d 'Confirm without asking'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from rollback" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from rollback" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from rollback" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from rollback" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from rollback" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -l from -d 'The tool whose history table is imported' -r -f -a "dbmate\t''
sqlx\t''
golang-migrate\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -l table -d 'Its history table [default: `schema_migrations`, for sqlx `_sqlx_migrations`]' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -l url -d 'Any PostgreSQL instead of the project\'s server (`postgres://user:pass@host:port/db`); prefer `DATABASE_URL`, which keeps the password out of process listings' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -l dir -d 'The migrations folder [default: `[migrations] dir`, else `migrations`]' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from adopt" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "new" -d 'Write `<dir>/<UTC timestamp>_<name>.sql` with an up and a down section'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "up" -d 'Apply pending migrations in version order, after a snapshot'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show each migration: applied or pending, when, how long, checksum (`--json`)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "down" -d 'Run down sections, newest first (the last one, or down to `--to`)'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "repair" -d 'Record the checksums of edited applied files, after showing the diff'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "rollback" -d 'Put the database back to the snapshot taken before the last `up`'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "adopt" -d 'Import the history table of dbmate, sqlx or golang-migrate'
complete -c pgbox -n "__fish_pgbox_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgbox -n "__fish_pgbox_using_subcommand stats" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand stats" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand stats" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand stats" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand stats" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand stats" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand stats" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand stats" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand top" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand top" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand top" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand top" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand top" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand top" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand top" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand top" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand metrics" -l listen -d 'Address to serve `/metrics` on' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand metrics" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand metrics" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand metrics" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand metrics" -l allow-remote -d 'Allow a non-loopback `--listen` address (the endpoint has no authentication)'
complete -c pgbox -n "__fish_pgbox_using_subcommand metrics" -l systemd-unit -d 'Print a systemd unit that runs this endpoint as a service, and exit'
complete -c pgbox -n "__fish_pgbox_using_subcommand metrics" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand metrics" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand metrics" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand metrics" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand metrics" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand switchover" -l to -d 'The node to lead next (`node1` or `1`); default: the synchronous standby, or any healthy replica' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand switchover" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand switchover" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand switchover" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand switchover" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand switchover" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand switchover" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand switchover" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand switchover" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand completions" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand completions" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand completions" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand completions" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand completions" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand completions" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand completions" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand completions" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand man" -l color -d 'When to use colours on stderr' -r -f -a "auto\t''
always\t''
never\t''"
complete -c pgbox -n "__fish_pgbox_using_subcommand man" -l config -d 'Use this pgbox.toml instead of searching upwards from the current folder' -r -F
complete -c pgbox -n "__fish_pgbox_using_subcommand man" -l engine -d 'Container engine: `docker`, `podman`, or an address such as `unix:///run/podman/podman.sock`' -r
complete -c pgbox -n "__fish_pgbox_using_subcommand man" -s q -l quiet -d 'Print nothing but data and errors'
complete -c pgbox -n "__fish_pgbox_using_subcommand man" -s v -l verbose -d 'Print more detail (engine calls, build output)'
complete -c pgbox -n "__fish_pgbox_using_subcommand man" -l json -d 'Machine-readable JSON on stdout, for commands that report'
complete -c pgbox -n "__fish_pgbox_using_subcommand man" -s h -l help -d 'Print help'
complete -c pgbox -n "__fish_pgbox_using_subcommand man" -s V -l version -d 'Print version'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "init" -d 'Create pgbox.toml, a generated password and the data folder'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "build" -d 'Build the PostgreSQL image from the embedded templates'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "up" -d 'Start PostgreSQL and wait until it accepts connections'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "down" -d 'Stop PostgreSQL gracefully; data is kept'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "status" -d 'Show the state of this project\'s server (exit 0 only when healthy)'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "logs" -d 'Show the server\'s log'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "psql" -d 'Open psql inside the container, or run it with arguments'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "url" -d 'Print the connection string on stdout'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "ls" -d 'List every pgbox-managed container on this host'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "backup" -d 'Dump a database to the backup folder; `list`, `verify` and `prune` manage backups'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "restore" -d 'Restore a backup: into a scratch database first, swapped in only on success'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "schedule" -d 'Scheduled backups with cron or systemd: install, list, status, remove, run'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "generate" -d 'Write deployment files: compose, podman, quadlet, kube, containerfile, or all'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "save" -d 'Fallback storage: save the running cluster to pgsql.tar.zst now'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "maintenance" -d 'Stop PostgreSQL but keep the container up for repairs (`on`), or resume (`off`)'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "upgrade" -d 'Move the data to a newer PostgreSQL major, with a backup first and a rollback'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "migrate" -d 'Numbered SQL migrations: new, up, status, down, repair, rollback, adopt'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "stats" -d 'One screen on the server: load, sizes, vacuum, top queries, locks, backups, advice'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "top" -d 'A live view of sessions and queries, refreshed every second'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "metrics" -d 'Serve Prometheus metrics (postgres_exporter names plus `pgbox_*`) in the foreground'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "switchover" -d 'Cluster: move the leader to another node (`[cluster] replicas`)'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "completions" -d 'Print a shell completion script on stdout'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "man" -d 'Print the man page (roff) on stdout'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and not __fish_seen_subcommand_from init build up down status logs psql url ls backup restore schedule generate save maintenance upgrade migrate stats top metrics switchover completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "list" -d 'List backups: time, database, size, age, verified'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "verify" -d 'Check a backup\'s checksum and run pg_restore --list on it'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "prune" -d 'Delete backups the retention policy does not keep (asks first)'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "sync" -d 'Ship every base backup and archived WAL file not yet off-site (PITR)'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from schedule" -f -a "install" -d 'Install a timer (systemd) or crontab entry that backs up, verifies and prunes'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from schedule" -f -a "list" -d 'Every pgbox schedule on this host (this user\'s and the system\'s)'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from schedule" -f -a "status" -d 'Last run, next run and the newest good backup; non-zero when something is wrong'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from schedule" -f -a "remove" -d 'Remove this project\'s crontab entry or timer'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from schedule" -f -a "run" -d 'What the timer runs: backup, verify, prune, record (no TTY, no prompts)'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "new" -d 'Write `<dir>/<UTC timestamp>_<name>.sql` with an up and a down section'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "up" -d 'Apply pending migrations in version order, after a snapshot'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "status" -d 'Show each migration: applied or pending, when, how long, checksum (`--json`)'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "down" -d 'Run down sections, newest first (the last one, or down to `--to`)'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "repair" -d 'Record the checksums of edited applied files, after showing the diff'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "rollback" -d 'Put the database back to the snapshot taken before the last `up`'
complete -c pgbox -n "__fish_pgbox_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "adopt" -d 'Import the history table of dbmate, sqlx or golang-migrate'
