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
