//! Output file paths: the Secrets Store CSI Driver's `File.path` rules, our
//! traversal checks, and collision detection between files of one Mount.
//!
//! The driver validates every path before writing (v1.6.0
//! `pkg/util/fileutil/writer.go`); we apply the same rules first so that a bad
//! name fails with a message naming the object instead of a driver error, and
//! we add what the driver leaves to chance (`.` elements, NUL bytes).

use std::collections::BTreeMap;

/// Longest path the driver accepts.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest path element the driver accepts.
pub const MAX_ELEMENT_LEN: usize = 255;

/// Checks one output path; the error says what rule it breaks.
pub fn validate(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the file path is empty".into());
    }
    if path.starts_with('/') {
        return Err(format!("the file path {path:?} is absolute"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!(
            "the file path is {} bytes long; the limit is {MAX_PATH_LEN}",
            path.len()
        ));
    }
    if path.contains('\0') {
        return Err(format!("the file path {path:?} contains a NUL byte"));
    }
    let elements: Vec<&str> = path.split('/').collect();
    for element in &elements {
        if *element == ".." {
            return Err(format!("the file path {path:?} contains '..'"));
        }
        if element.len() > MAX_ELEMENT_LEN {
            return Err(format!(
                "the file path {path:?} has an element of {} bytes; the limit is {MAX_ELEMENT_LEN}",
                element.len()
            ));
        }
    }
    if elements[0].len() > 2 && elements[0].starts_with("..") {
        return Err(format!(
            "the file path {path:?} starts with '..', which the driver reserves for its own files"
        ));
    }
    if elements.iter().any(|e| e.is_empty() || *e == ".") {
        return Err(format!(
            "the file path {path:?} is not clean: it has an empty or '.' element (a doubled, leading or trailing '/', or './')"
        ));
    }
    Ok(())
}

/// Finds two outputs that cannot both be written: the same path, or one path
/// that is a directory prefix of the other (`a` and `a/b`). Returns the two
/// owners' labels and the conflicting paths.
pub fn find_collision(outputs: &[(&str, String)]) -> Option<Collision> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (path, owner) in outputs {
        if let Some(first) = seen.get(path) {
            return Some(Collision {
                first: (*first).to_string(),
                second: owner.clone(),
                first_path: path.to_string(),
                second_path: path.to_string(),
            });
        }
        seen.insert(path, owner);
    }
    for (path, owner) in outputs {
        let mut prefix_end = 0;
        while let Some(i) = path[prefix_end..].find('/') {
            prefix_end += i;
            let dir = &path[..prefix_end];
            if let Some(first) = seen.get(dir) {
                return Some(Collision {
                    first: (*first).to_string(),
                    second: owner.clone(),
                    first_path: dir.to_string(),
                    second_path: path.to_string(),
                });
            }
            prefix_end += 1;
        }
    }
    None
}

/// Two outputs of one Mount that conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// The owner of the first file.
    pub first: String,
    /// The owner of the second file.
    pub second: String,
    /// The first file's path.
    pub first_path: String,
    /// The second file's path (equal, or under the first).
    pub second_path: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    // The driver's writer_test.go / atomic_writer_test.go cases.
    #[test]
    fn the_drivers_accepted_paths() {
        for ok in [
            "file",
            "secret.txt",
            "dir/file",
            "dir/sub/file",
            "data_not_reserved/x",
            ".hidden",
            ".x",
            "a/..b",
        ] {
            assert!(validate(ok).is_ok(), "{ok}: {:?}", validate(ok));
        }
    }

    #[test]
    fn the_drivers_rejected_paths() {
        let long = "a".repeat(4097);
        let long_element = format!("dir/{}", "b".repeat(256));
        for (bad, why) in [
            (long.as_str(), "limit is 4096"),
            ("/dev/null", "absolute"),
            ("..sneaky.txt", "reserves"),
            ("foo/../etc/password", "'..'"),
            ("..", "'..'"),
            ("", "empty"),
            ("foo////bar", "not clean"),
            ("./x", "not clean"),
            ("a/./b", "not clean"),
            ("dir/", "not clean"),
            (".", "not clean"),
            (long_element.as_str(), "limit is 255"),
            ("a\0b", "NUL"),
        ] {
            let err = validate(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(validate(&"a/".repeat(2047)[..4093]).is_ok());
    }

    fn outputs(list: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        list.iter().map(|(p, o)| (*p, o.to_string())).collect()
    }

    #[test]
    fn collisions() {
        assert_eq!(find_collision(&outputs(&[("a", "x"), ("b", "y")])), None);
        let c = find_collision(&outputs(&[("a", "x"), ("b", "y"), ("a", "z")])).unwrap();
        assert_eq!((c.first.as_str(), c.second.as_str()), ("x", "z"));
        let c = find_collision(&outputs(&[("a/b/c", "deep"), ("a/b", "mid")])).unwrap();
        assert_eq!((c.first.as_str(), c.second.as_str()), ("mid", "deep"));
        assert_eq!(
            (c.first_path.as_str(), c.second_path.as_str()),
            ("a/b", "a/b/c")
        );
        assert_eq!(
            find_collision(&outputs(&[("ab", "x"), ("a/b", "y"), ("a_b", "z")])),
            None
        );
    }
}
