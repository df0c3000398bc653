//! Library paths as people and agents write them, checked before anything
//! touches storage: relative, slash-separated, no `.` or `..` segments, no
//! empty segments, no control, invisible or direction-changing characters.

use crate::{Error, Result};

/// The longest path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest segment (file or folder name), in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Characters that make a name look like something it is not: zero-width
/// characters, direction overrides and isolates, the byte-order mark, and
/// the replacement character (a sign of a broken encoding).
fn deceptive(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}' | '\u{FFFD}' | '\u{00AD}')
}

/// A checked path: returns it without leading or trailing slashes.
/// `folder` allows the empty path (the library's root).
pub fn check(path: &str, folder: bool) -> Result<String> {
    let invalid = |why: &str| Err(Error::InvalidPath { path: path.to_owned(), reason: why.to_owned() });
    if path.starts_with('/') || path.starts_with('~') {
        return invalid("paths are relative to the library; remove the leading `/`");
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if folder { Ok(String::new()) } else { invalid("a file needs a name") };
    }
    if trimmed.len() > MAX_PATH_BYTES {
        return invalid("the path is longer than 1024 bytes");
    }
    if trimmed.contains('\\') {
        return invalid("use `/` to separate folders");
    }
    if let Some(c) = trimmed.chars().find(|c| c.is_control() || deceptive(*c)) {
        return invalid(&format!("the character U+{:04X} is not allowed in names", c as u32));
    }
    for segment in trimmed.split('/') {
        match segment {
            "" => return invalid("empty folder names (`//`) are not allowed"),
            "." | ".." => return invalid("`.` and `..` are not allowed in paths"),
            s if s.len() > MAX_SEGMENT_BYTES => return invalid("a name is longer than 255 bytes"),
            s if s.trim() != s => return invalid("names cannot begin or end with spaces"),
            _ => {}
        }
    }
    if !folder && path.ends_with('/') {
        return invalid("a file path cannot end with `/`");
    }
    Ok(trimmed.to_owned())
}

/// `folder/name`, or `name` at the root.
pub fn join(folder: &str, name: &str) -> String {
    if folder.is_empty() { name.to_owned() } else { format!("{folder}/{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_paths_pass_and_bad_ones_are_refused() {
        let good = ["a.txt", "reports/2026/q1.pdf", "données/été.csv", "数据/文件.json", "a b/c d.txt", "x/"];
        for path in good {
            assert!(check(path, false).is_ok() || path.ends_with('/'), "{path}");
        }
        assert_eq!(check("reports/", true).unwrap(), "reports");
        assert_eq!(check("", true).unwrap(), "");
        let bad = [
            "",
            "/etc/passwd",
            "../secret",
            "a/../../b",
            "a/./b",
            "a//b",
            "a\\b",
            "~/x",
            "a/\u{0000}b",
            "a\nb",
            "evil\u{202E}fdp.exe",
            "zero\u{200B}width",
            "bom\u{FEFF}",
            " lead",
            "trail /x",
            "dir/",
        ];
        for path in bad {
            assert!(check(path, false).is_err(), "{path:?} should be refused");
        }
        assert!(check(&"a".repeat(256), false).is_err());
        assert!(check(&["a"; 600].join("/"), false).is_err());
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("x/y", "a"), "x/y/a");
    }
}
