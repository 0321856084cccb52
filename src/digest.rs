//! Hex digests: one way to print a hash, for backup checksums, image tags and
//! the fingerprints that tell whether a container or a config file changed.

use sha2::{Digest, Sha256};

/// The size and sha256 of a stream of bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sum {
    pub bytes: u64,
    pub sha256: String,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// sha256 of `data`, in hex.
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    hex(&Sha256::digest(data.as_ref()))
}

/// The size and sha256 of everything `r` yields, read in 1 MiB pieces; a read
/// error (a cancelling reader's included) ends it.
pub fn sum_reader(mut r: impl std::io::Read) -> std::io::Result<Sum> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        h.update(&buf[..n]);
    }
    Ok(Sum {
        bytes,
        sha256: hex(&h.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_is_the_published_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }

    #[test]
    fn a_reader_is_summed_across_its_pieces() {
        let data: Vec<u8> = (0..(3 << 20) + 7).map(|i| (i % 251) as u8).collect();
        let sum = sum_reader(&data[..]).unwrap();
        assert_eq!(sum.bytes, data.len() as u64);
        assert_eq!(sum.sha256, sha256_hex(&data));
    }
}
