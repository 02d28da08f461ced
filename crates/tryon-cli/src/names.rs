//! Output file names for batch rows: one file per row id, never shared.
//!
//! An id made only of ASCII letters, digits, `-`, `_` and `.`, not starting
//! with `.` and at most [`MAX_VERBATIM`] bytes long is used as it is
//! (`look-1` -> `look-1.png`). Any other id (`a/b`, `a b`, `..`, an empty
//! or very long id, non-ASCII) becomes its first [`PREFIX`] characters with
//! every other character replaced by `_`, then `~` and 16 hex digits of a
//! hash of the exact id (`a/b` -> `a_b~` + 16 hex digits + `.png`). `~` never
//! appears in a verbatim name, so a hashed name cannot equal a verbatim
//! one; names are at most ~130 bytes, well under a file system's 255; and
//! `validate` still refuses two rows whose names match (ignoring case, for
//! case-insensitive file systems), should a hash ever collide.

/// The longest id used verbatim as a file name, in bytes.
pub const MAX_VERBATIM: usize = 100;

/// How many characters of an unsafe id are kept, sanitised, in its name.
pub const PREFIX: usize = 40;

/// The longest file name most file systems allow, in bytes.
pub const MAX_NAME: usize = 255;

/// FNV-1a, 64 bits: a small stable hash (for names and fingerprints, not
/// for security).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// The file name of row `id`'s output with extension `extension`.
pub fn file_name(id: &str, extension: &str) -> String {
    let verbatim = !id.is_empty()
        && id.len() <= MAX_VERBATIM
        && !id.starts_with('.')
        && id.chars().all(safe_char);
    if verbatim {
        return format!("{id}.{extension}");
    }
    let prefix: String = id
        .chars()
        .take(PREFIX)
        .enumerate()
        .map(|(i, c)| {
            if safe_char(c) && !(i == 0 && c == '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}~{:016x}.{extension}", fnv1a(id.as_bytes()))
}

/// The file name an earlier version's image of a row is kept under, when
/// the row was edited since its job: the row's file name `name` with
/// `~previous-` and the first 8 characters of the job's request id before
/// the extension (`look-1.png` -> `look-1~previous-cd5ae36b.png`). No row's
/// own name has that shape (a verbatim name has no `~`; a hashed one has
/// 16 hex digits after its `~`), so it is never taken for a row's output.
/// A request id that is not made of ASCII letters, digits and `-` (a
/// server's is a UUID) is hashed instead.
pub fn previous(name: &str, request_id: &str) -> String {
    let short = if request_id.len() >= 8
        && request_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        request_id[..8].to_string()
    } else {
        format!("{:016x}", fnv1a(request_id.as_bytes()))
    };
    match name.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}~previous-{short}.{extension}"),
        None => format!("{name}~previous-{short}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_ids_are_kept_and_others_never_share_a_name() {
        assert_eq!(file_name("look-1", "png"), "look-1.png");
        assert_eq!(file_name("v1.2_final", "jpg"), "v1.2_final.jpg");
        let ids = ["a/b", "a_b", "a b", ".", "..", "", "a\u{1b}b", "é"];
        let names: std::collections::HashSet<String> =
            ids.iter().map(|id| file_name(id, "png")).collect();
        assert_eq!(names.len(), ids.len(), "{names:?}");
        for name in &names {
            assert!(!name.starts_with('.'), "{name}: no hidden files");
            assert!(!name.contains('/'), "{name}");
            assert!(name.chars().all(|c| safe_char(c) || c == '~'), "{name}");
        }
        assert_eq!(file_name("a_b", "png"), "a_b.png");
        assert!(file_name("a/b", "png").starts_with("a_b~"));
    }

    #[test]
    fn long_ids_get_short_names() {
        let long = "x".repeat(300);
        let name = file_name(&long, "webp");
        assert!(name.len() < 70, "{name}");
        assert_ne!(name, file_name(&"x".repeat(301), "webp"));
        let limit = "y".repeat(MAX_VERBATIM);
        assert_eq!(file_name(&limit, "png"), format!("{limit}.png"));
        assert!(file_name(&"é".repeat(200), "png").len() <= MAX_NAME);
    }

    #[test]
    fn previous_names_are_never_a_rows_name() {
        let id = "cd5ae36b-bd67-4334-a478-a5f2615cb60d";
        assert_eq!(previous("look-1.png", id), "look-1~previous-cd5ae36b.png");
        let hashed = file_name("a/b", "png");
        let kept = previous(&hashed, id);
        assert!(kept.ends_with("~previous-cd5ae36b.png"), "{kept}");
        // The id that would most look like it gets a hashed name.
        assert_ne!(
            file_name("look-1~previous-cd5ae36b", "png"),
            previous("look-1.png", id)
        );
        assert!(previous("x.png", "../../etc").starts_with("x~previous-"));
        assert!(!previous("x.png", "../../etc").contains('/'));
    }
}
