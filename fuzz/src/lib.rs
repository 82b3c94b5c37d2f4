//! Helpers shared by the fuzz targets: splitting one input into fields, and
//! the dictionary values the structured targets choose from.

/// Splits `data` on NUL into at most `n` fields (the last keeps any further
/// NULs); missing fields are empty. Used by targets whose seeds are written
/// as text, so that a seed file is just the fields joined with `\0`.
pub fn split_fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |b| *b == 0).collect();
    while out.len() < n {
        out.push(b"");
    }
    out
}

/// `bytes` as text, invalid UTF-8 replaced (the gRPC layer hands the
/// provider `String`s, so only valid UTF-8 reaches the parsers).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Picks `table[byte % len]`.
pub fn pick<T: Copy>(table: &[T], byte: u8) -> T {
    table[byte as usize % table.len()]
}
