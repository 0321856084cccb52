//! The one way pgbox.toml values are checked: inside deserialisation, so a bad
//! value's error carries the file, line and column (shared by the sections).

use serde::{Deserialize, Deserializer};

/// Deserialize a `T` and run `check` on it; its error becomes the value's error.
pub fn de_with<'de, D, T, F>(d: D, check: F) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
    F: FnOnce(&T) -> Result<(), String>,
{
    let v = T::deserialize(d)?;
    check(&v).map_err(serde::de::Error::custom)?;
    Ok(Some(v))
}
