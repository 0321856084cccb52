//! SCRAM-SHA-256 password verifiers, computed on the host (RFC 5802 / RFC 7677).
//!
//! `ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...'` stores a verifier PostgreSQL
//! accepts as is, so a password change never sends the password itself to the
//! server, its logs or any process argument.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

const ITERATIONS: u32 = 4096;

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// The verifier for `password` with a given salt.
pub fn verifier_with_salt(password: &str, salt: &[u8]) -> String {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, ITERATIONS, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    )
}

/// The verifier for `password` with a fresh random salt.
pub fn verifier(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    verifier_with_salt(password, &salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_implementation() {
        // Expected value computed with Python's hashlib/hmac from RFC 5802's definitions.
        let salt = B64.decode("Qae3Bj+3hpSEiDLd4SjB4w==").unwrap();
        assert_eq!(
            verifier_with_salt("pencil", &salt),
            "SCRAM-SHA-256$4096:Qae3Bj+3hpSEiDLd4SjB4w==$jps9xOLCTTJuh/taiUqHNeSCT2xOJFgB3iJ33yt1W44=:sAWAhluJtti+6DohWwHLt+t9wMF4iGXZrOIe1CDV7w8="
        );
    }

    #[test]
    fn fresh_salts_differ() {
        assert_ne!(verifier("x"), verifier("x"));
    }
}
