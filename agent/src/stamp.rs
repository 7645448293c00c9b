//! The agent's version, read from a build stamp in the binary: a marked,
//! fixed-size byte array that packaging sets at build time
//! (`SLIPWAY_BUILD_VERSION`, else the crate's version) or rewrites in a
//! built binary with [`stamp`], so a release pipeline can label a binary
//! without rebuilding it.

/// What precedes the version in the binary; it appears there once.
pub const MARKER: &[u8; 24] = b"SLIPWAY_AGENT_VERSION_V1";
/// Bytes of the version field after the marker (NUL-padded).
pub const VERSION_BYTES: usize = 64;
const LEN: usize = MARKER.len() + VERSION_BYTES;

const fn build_stamp() -> [u8; LEN] {
    let version = match option_env!("SLIPWAY_BUILD_VERSION") {
        Some(version) => version.as_bytes(),
        None => env!("CARGO_PKG_VERSION").as_bytes(),
    };
    assert!(
        version.len() <= VERSION_BYTES,
        "SLIPWAY_BUILD_VERSION is too long"
    );
    let mut out = [0u8; LEN];
    let mut i = 0;
    while i < MARKER.len() {
        out[i] = MARKER[i];
        i += 1;
    }
    let mut j = 0;
    while j < version.len() {
        out[MARKER.len() + j] = version[j];
        j += 1;
    }
    out
}

#[used]
static STAMP: [u8; LEN] = build_stamp();

/// The version this binary reports (`--version`, `HostInfo.agent_version`).
pub fn version() -> &'static str {
    // Read through black_box: the bytes in the file are the truth, not the
    // value the compiler saw.
    let stamp: &'static [u8; LEN] = std::hint::black_box(&STAMP);
    parse(&stamp[MARKER.len()..]).unwrap_or(env!("CARGO_PKG_VERSION"))
}

fn parse(field: &[u8]) -> Option<&str> {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    let text = std::str::from_utf8(&field[..end]).ok()?;
    valid(text).then_some(text)
}

/// Whether `version` may be stamped or expected: 1-64 bytes of letters,
/// digits and `.-+_~`.
pub fn valid(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= VERSION_BYTES
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-+_~".contains(&b))
}

/// Why a binary could not be stamped.
#[derive(Debug, thiserror::Error)]
pub enum StampError {
    /// The version has other characters or length.
    #[error("version {0:?} must be 1-64 characters of letters, digits and .-+_~")]
    Version(String),
    /// The binary has no stamp, or more than one.
    #[error("the file has {0} version stamps; a slipway-agent binary has exactly one")]
    Stamps(usize),
}

/// Rewrites the version stamp of a slipway-agent binary held in `binary`.
pub fn stamp(binary: &mut [u8], version: &str) -> Result<(), StampError> {
    if !valid(version) {
        return Err(StampError::Version(version.to_owned()));
    }
    let found: Vec<usize> = binary
        .windows(MARKER.len())
        .enumerate()
        .filter(|(_, w)| *w == MARKER)
        .map(|(at, _)| at)
        .collect();
    let [at] = found[..] else {
        return Err(StampError::Stamps(found.len()));
    };
    let field = &mut binary[at + MARKER.len()..at + LEN];
    field.fill(0);
    field[..version.len()].copy_from_slice(version.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_is_read_and_rewritten() {
        assert_eq!(version(), env!("CARGO_PKG_VERSION"));
        let mut file = b"head".to_vec();
        file.extend_from_slice(&build_stamp());
        file.extend_from_slice(b"tail");
        stamp(&mut file, "9.9.9-test").unwrap();
        assert_eq!(parse(&file[4 + MARKER.len()..4 + LEN]), Some("9.9.9-test"));
        assert!(matches!(
            stamp(&mut file, "a b"),
            Err(StampError::Version(_))
        ));
        assert!(matches!(
            stamp(&mut b"no stamp".to_vec(), "1"),
            Err(StampError::Stamps(0))
        ));
    }
}
