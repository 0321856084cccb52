//! SCRAM-SHA-256 password verifiers, computed on the host (RFC 5802 / RFC 7677).
//!
//! `ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...'` stores a verifier PostgreSQL
//! accepts as is, so a password change never sends the password itself to the
//! server, its logs or any process argument.
//!
//! The verifier must be computed from the password as libpq and the server see it:
//! normalised by SASLprep (RFC 4013), so `ｐａｓｓ` and `pass` are one password,
//! and taken as raw bytes when it is not valid SASLprep. `postgres-protocol` (the
//! crate tokio-postgres logs in with) does exactly that, so pgbox uses it rather
//! than a hand-written PBKDF2 that skipped the normalisation.

/// The verifier for `password` with a fresh random salt.
pub fn verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    use sha2::{Digest, Sha256};

    fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }

    /// A full SCRAM exchange as the server runs it: a client that knows `password`
    /// (and prepares it as libpq does) proves itself against the stored `verifier`.
    fn logs_in(verifier: &str, password: &str) -> bool {
        let rest = verifier.strip_prefix("SCRAM-SHA-256$").unwrap();
        let (iter_salt, keys) = rest.split_once('$').unwrap();
        let (iterations, salt) = iter_salt.split_once(':').unwrap();
        let (stored_key, server_key) = keys.split_once(':').unwrap();
        let stored_key = B64.decode(stored_key).unwrap();
        let server_key = B64.decode(server_key).unwrap();

        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let first = String::from_utf8(client.message().to_vec()).unwrap();
        let first_bare = first.strip_prefix("n,,").unwrap();
        // The nonce may itself contain `r=`: take everything after the attribute.
        let client_nonce = first_bare.split_once(",r=").unwrap().1;
        let server_first = format!("r={client_nonce}SERVERNONCE,s={salt},i={iterations}");
        client.update(server_first.as_bytes()).unwrap();
        let last = String::from_utf8(client.message().to_vec()).unwrap();
        let (without_proof, proof) = last.split_once(",p=").unwrap();
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = B64
            .decode(proof)
            .unwrap()
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if Sha256::digest(&client_key).as_slice() != stored_key.as_slice() {
            return false;
        }
        // The client checks the server's signature too.
        let server_sig = B64.encode(hmac(&server_key, auth_message.as_bytes()));
        client.finish(format!("v={server_sig}").as_bytes()).is_ok()
    }

    #[test]
    fn known_vectors_log_in() {
        // RFC 5802's password with a verifier computed from its definitions.
        let pencil = "SCRAM-SHA-256$4096:Qae3Bj+3hpSEiDLd4SjB4w==$jps9xOLCTTJuh/taiUqHNeSCT2xOJFgB3iJ33yt1W44=:sAWAhluJtti+6DohWwHLt+t9wMF4iGXZrOIe1CDV7w8=";
        assert!(logs_in(pencil, "pencil"));
        assert!(!logs_in(pencil, "pencil "));
        // Verifiers PostgreSQL 15 stored for `CREATE ROLE .. PASSWORD U&'\FF50\FF41\FF53\FF53'`
        // (full-width `ｐａｓｓ`) and `U&'\FB01x'` (`ﬁx`): the server applies SASLprep,
        // so the plain ASCII forms log in.
        let fullwidth = "SCRAM-SHA-256$4096:x2pHGriEPcvGF8qNWQ4klQ==$xrTG1/1r6SV8Ly6tWhG2E3m3yDpXVpwZ1yGJv0c9MwM=:2qzzrbdlV8TBgBmK8q4DnkbrwZOxwL9aOjKY2awlmM0=";
        assert!(logs_in(fullwidth, "pass"));
        assert!(logs_in(fullwidth, "ｐａｓｓ"));
        let ligature = "SCRAM-SHA-256$4096:ZS873UP32fOxZQU54bBQJg==$pVMkQ+otaQvhIJGQJ+Kp9ZVZOGC4ZYAGkyDiyIuvVhM=:6yP5Uz5lDOF3N3PPyk672RrhOwnUZvPVb/rhhL4bKrU=";
        assert!(logs_in(ligature, "fix"));
    }

    #[test]
    fn verifiers_are_normalised_like_the_server_does() {
        // The normalised form logs in (proves SASLprep was applied on our side too).
        for (given, normal) in [
            ("ｐａｓｓ", "pass"),
            ("\u{FB01}le", "file"),
            ("a\u{00A0}b", "a b"),
            ("a\u{3000}b", "a b"),
            ("plain-ASCII_1", "plain-ASCII_1"),
            ("I\u{00AD}X", "IX"),
        ] {
            let v = verifier(given);
            assert!(logs_in(&v, given), "{given:?}");
            assert!(logs_in(&v, normal), "{given:?} as {normal:?}");
            assert!(!logs_in(&v, "wrong"), "{given:?}");
        }
        // Not valid SASLprep (a prohibited control character, an unassigned code
        // point): both sides fall back to the raw bytes.
        for raw in ["a\u{0007}b", "x\u{0378}y"] {
            let v = verifier(raw);
            assert!(logs_in(&v, raw), "{raw:?}");
        }
    }

    #[test]
    fn fresh_salts_differ() {
        assert_ne!(verifier("x"), verifier("x"));
    }
}
