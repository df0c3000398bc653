//! The content type of an upload, judged from its first bytes (never from
//! what the client claims): a known binary signature wins; otherwise UTF-8
//! text gets the type its extension names (CSV, JSON, Markdown…) or
//! `text/plain`; anything else is `application/octet-stream`. The type is
//! recorded as it is; downloads are always attachments that browsers may not
//! sniff or run (see the gateway), so an HTML or SVG upload cannot act in
//! Cairn's origin.

/// How many leading bytes the judgement needs.
pub(crate) const SNIFF_BYTES: usize = 8192;

pub(crate) fn content_type(head: &[u8], path: &str) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    if looks_like_text(head) {
        let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        let text_type = match extension.as_str() {
            "csv" => "text/csv",
            "tsv" => "text/tab-separated-values",
            "json" => "application/json",
            "md" | "markdown" => "text/markdown",
            "html" | "htm" => "text/html",
            "py" => "text/x-python",
            "yaml" | "yml" => "application/yaml",
            "xml" => "application/xml",
            _ => "text/plain",
        };
        return format!("{text_type}; charset=utf-8");
    }
    "application/octet-stream".to_owned()
}

/// UTF-8 without NUL bytes; a multi-byte character cut at the end of the
/// sample does not count against it.
fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_decides_not_the_name() {
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
        assert_eq!(content_type(&png, "notes.txt"), "image/png");
        assert_eq!(content_type(b"%PDF-1.7\n", "x.csv"), "application/pdf");
        assert_eq!(content_type(b"a,b\n1,2\n", "data.csv"), "text/csv; charset=utf-8");
        assert_eq!(content_type(b"<html><script>alert(1)</script>", "notes.txt"), "text/html");
        assert_eq!(content_type(b"\x00\x01\x02binary", "data.csv"), "application/octet-stream");
        assert_eq!(content_type("caf\u{e9}".as_bytes(), "x.md"), "text/markdown; charset=utf-8");
        assert_eq!(content_type(&"é".as_bytes()[..1], "x.txt"), "text/plain; charset=utf-8", "a cut character");
        assert_eq!(content_type(b"", "empty.bin"), "text/plain; charset=utf-8");
    }
}
