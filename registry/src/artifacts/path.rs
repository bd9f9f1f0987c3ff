//! `ArtifactPath`: the checked, normalised form of a path the artifact proxy receives.
//!
//! `ArtifactPath::parse` is the security gate in front of storage: every other function in
//! `artifacts` takes an `ArtifactPath`, so nothing reaches the object store with `..`, an
//! absolute path, a backslash or a control character in it. What is done with a path lives in
//! the parent module.

use std::fmt;

use percent_encoding::percent_decode_str;

use super::ArtifactError;

/// First segment that holds in-progress multipart uploads; clients may not name it.
pub(super) const MULTIPART_PREFIX: &str = ".okla-mpu";

/// S3 refuses keys longer than 1024 bytes, so longer paths could never be stored anyway.
const MAX_PATH_BYTES: usize = 1024;

/// Most local filesystems refuse longer file names.
const MAX_SEGMENT_BYTES: usize = 255;

/// MLflow decodes up to ten times before it gives up, and so do we.
const MAX_DECODE_ROUNDS: usize = 10;

/// A path below the artifact root: relative, `/`-separated, without empty, `.` or `..` segments.
///
/// The empty path is the root itself. Only listing and digesting accept the root; every
/// operation on a single file refuses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    /// The artifact root, for listing or digesting everything.
    pub fn root() -> ArtifactPath {
        ArtifactPath(String::new())
    }

    /// Checks and normalises a path exactly as the HTTP layer decoded it from the request.
    ///
    /// Empty and `.` segments are dropped (`a//b` and `./a/b` become `a/b`), and the empty
    /// string is the root. The text is stored as given, but it is also checked after repeated
    /// URL-decoding, so a double-encoded `..%252F` is refused as well, like MLflow does.
    pub fn parse(raw: &str) -> Result<ArtifactPath, ArtifactError> {
        check_text(raw, raw, "")?;
        let fully_decoded = fully_decode(raw)?;
        if fully_decoded != raw {
            check_text(raw, &fully_decoded, "once URL-decoded, ")?;
            if fully_decoded.split('/').any(|segment| segment == "..") {
                return Err(invalid(
                    raw,
                    "once URL-decoded, it climbs out of the artifact root with `..`",
                ));
            }
        }

        let mut segments = Vec::new();
        for segment in raw.split('/') {
            match segment {
                "" | "." => continue,
                ".." => return Err(invalid(raw, "it climbs out of the artifact root with `..`")),
                _ if segment.len() > MAX_SEGMENT_BYTES => {
                    return Err(invalid(
                        raw,
                        &format!("a segment is longer than {MAX_SEGMENT_BYTES} bytes"),
                    ));
                }
                _ => segments.push(segment),
            }
        }
        if segments.first() == Some(&MULTIPART_PREFIX) {
            return Err(invalid(
                raw,
                &format!("`{MULTIPART_PREFIX}` is reserved for multipart uploads"),
            ));
        }
        let normalised = segments.join("/");
        if normalised.len() > MAX_PATH_BYTES {
            return Err(invalid(
                raw,
                &format!("it is longer than {MAX_PATH_BYTES} bytes"),
            ));
        }
        Ok(ArtifactPath(normalised))
    }

    /// The normalised text, `/`-separated and without a leading `/`; empty for the root.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the artifact root, which only listing and digesting accept.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last segment, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.0.rsplit('/').next()
        }
    }

    /// Appends a relative path, which goes through the same checks as `parse`.
    pub fn join(&self, relative: &str) -> Result<ArtifactPath, ArtifactError> {
        let relative = ArtifactPath::parse(relative)?;
        if self.is_root() {
            return Ok(relative);
        }
        if relative.is_root() {
            return Ok(self.clone());
        }
        let joined = format!("{}/{}", self.0, relative.0);
        if joined.len() > MAX_PATH_BYTES {
            return Err(invalid(
                &joined,
                &format!("it is longer than {MAX_PATH_BYTES} bytes"),
            ));
        }
        Ok(ArtifactPath(joined))
    }
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Refuses what no segment split can make safe; `context` says whether `text` was decoded.
fn check_text(raw: &str, text: &str, context: &str) -> Result<(), ArtifactError> {
    let reason = if text.chars().any(char::is_control) {
        "it contains a control character"
    } else if text.contains('\\') {
        "it contains a backslash"
    } else if text.starts_with('/') {
        "it is absolute"
    } else if names_windows_drive(text) {
        "it names a windows drive"
    } else if text.contains('#') {
        // MLflow refuses `#` too, and LocalFileSystem hides names ending in `#<digits>`,
        // which it uses for its own temporary upload files.
        "it contains `#`"
    } else {
        return Ok(());
    };
    Err(invalid(raw, &format!("{context}{reason}")))
}

/// True for `C:`, `C:x` and `C:/x`, which Windows reads as a drive however they continue.
fn names_windows_drive(text: &str) -> bool {
    let mut characters = text.chars();
    matches!(
        (characters.next(), characters.next()),
        (Some(letter), Some(':')) if letter.is_ascii_alphabetic()
    )
}

/// Percent-decodes until the text stops changing, as MLflow's `validate_path_is_safe` does.
fn fully_decode(raw: &str) -> Result<String, ArtifactError> {
    let mut current = raw.to_owned();
    for _ in 0..MAX_DECODE_ROUNDS {
        let decoded = percent_decode_str(&current)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == current {
            return Ok(current);
        }
        current = decoded;
    }
    Err(invalid(raw, "it is percent-encoded too many times"))
}

fn invalid(path: &str, reason: &str) -> ArtifactError {
    ArtifactError::InvalidPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks one input: `Ok(normalised)` when it must pass, `Err(reason fragment)` when not.
    fn check(raw: &str, expected: Result<&str, &str>) {
        match (ArtifactPath::parse(raw), expected) {
            (Ok(path), Ok(normalised)) => assert_eq!(path.as_str(), normalised, "input {raw:?}"),
            (Err(ArtifactError::InvalidPath { path, reason }), Err(fragment)) => {
                assert_eq!(path, raw, "the error names the input");
                assert!(
                    reason.contains(fragment),
                    "input {raw:?}: reason {reason:?} lacks {fragment:?}"
                );
            }
            (outcome, expected) => panic!("input {raw:?}: got {outcome:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn parse_accepts_and_normalises_relative_paths() {
        let table = [
            ("a/b.txt", "a/b.txt"),
            ("a//b", "a/b"),
            ("./a", "a"),
            ("a/./b/", "a/b"),
            ("", ""),
            (".", ""),
            (
                "1/0123abcd/artifacts/model/MLmodel",
                "1/0123abcd/artifacts/model/MLmodel",
            ),
            ("plots/loss curve [1].png", "plots/loss curve [1].png"),
            ("100%.txt", "100%.txt"),
            ("a/.okla-mpu/x", "a/.okla-mpu/x"),
            ("...", "..."),
            ("a..b/c", "a..b/c"),
            ("ünïcødé/файл.txt", "ünïcødé/файл.txt"),
        ];
        for (raw, normalised) in table {
            check(raw, Ok(normalised));
        }
    }

    #[test]
    fn parse_refuses_unsafe_paths() {
        let table = [
            ("../x", "`..`"),
            ("a/../../b", "`..`"),
            ("a/..", "`..`"),
            ("/etc/passwd", "absolute"),
            ("/", "absolute"),
            ("%2Fetc%2Fpasswd", "once URL-decoded, it is absolute"),
            ("a/%2e%2e/%2e%2e/b", "once URL-decoded, it climbs out"),
            ("..%252Fx", "once URL-decoded, it climbs out"),
            ("a\0b", "control character"),
            ("a\nb", "control character"),
            ("a%00b", "once URL-decoded, it contains a control character"),
            ("C:\\x", "backslash"),
            ("C:/x", "windows drive"),
            ("c:", "windows drive"),
            ("a\\b", "backslash"),
            ("a%5Cb", "backslash"),
            (".okla-mpu/x", "reserved"),
            ("./.okla-mpu", "reserved"),
            ("a#1", "`#`"),
        ];
        for (raw, fragment) in table {
            check(raw, Err(fragment));
        }
    }

    #[test]
    fn parse_refuses_overlong_paths() {
        check(&"a".repeat(MAX_SEGMENT_BYTES + 1), Err("segment is longer"));
        let long_path = vec!["abcdefgh"; 200].join("/");
        check(&long_path, Err("longer than 1024 bytes"));
    }

    #[test]
    fn join_checks_the_relative_part() {
        let directory = ArtifactPath::parse("1/run/artifacts").expect("valid path");
        let joined = directory.join("model//MLmodel").expect("valid join");
        assert_eq!(joined.as_str(), "1/run/artifacts/model/MLmodel");
        assert_eq!(joined.file_name(), Some("MLmodel"));
        assert!(directory.join("../../../etc").is_err());
        assert!(directory.join("/etc").is_err());
        assert_eq!(
            directory.join("").expect("empty join").as_str(),
            "1/run/artifacts"
        );
        assert_eq!(
            ArtifactPath::root()
                .join("a")
                .expect("join on root")
                .as_str(),
            "a"
        );
        assert!(ArtifactPath::root().join(".okla-mpu/x").is_err());
        assert_eq!(ArtifactPath::root().file_name(), None);
    }
}
