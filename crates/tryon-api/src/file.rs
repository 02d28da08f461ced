//! Reading a local file a user named, bounded: shared by the client (its
//! image reader), the mock (`--config`) and the CLI (manifests, the run
//! record). Only a regular file is read: opening a FIFO for reading blocks
//! until a writer comes, and `/dev/zero` never ends. At most `max_bytes + 1`
//! bytes are ever read, whatever the metadata said, so a file that grows
//! while it is read is refused too.

use std::fs::FileType;
use std::io::{self, Read as _};
use std::path::Path;

/// What a file that is not a regular file is, for an error message: "a
/// FIFO (named pipe)", "a directory", "a character device", ...
#[must_use]
pub fn describe(t: FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Reads the regular file at `path`, at most `max_bytes` of it.
///
/// # Errors
/// The file cannot be opened or read (its own error), is not a regular file
/// (`InvalidInput`: "is a FIFO (named pipe), not a regular file"), or is
/// over `max_bytes` (`InvalidInput`: "is over 1024 bytes, the most read").
/// The message never repeats the path: callers put it in front.
///
/// ```
/// let err = tryon_api::file::read_regular("/dev/zero".as_ref(), 1024).unwrap_err();
/// assert_eq!(err.to_string(), "is a character device, not a regular file");
/// ```
pub fn read_regular(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let not_regular = |t: FileType, what: &str| {
        (!t.is_file()).then(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what} {}, not a regular file", describe(t)),
            )
        })
    };
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is over {max_bytes} bytes, the most read"),
        )
    };
    let meta = std::fs::metadata(path)?;
    if let Some(e) = not_regular(meta.file_type(), "is") {
        return Err(e);
    }
    if meta.len() > max_bytes {
        return Err(too_big());
    }
    let file = std::fs::File::open(path)?;
    // The path may have been swapped between the check and the open: read
    // only what was opened, if it is still a regular file.
    if let Some(e) = not_regular(file.metadata()?.file_type(), "became") {
        return Err(e);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_read_whole_up_to_the_bound() {
        let dir = std::env::temp_dir().join(format!("tryon-api-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.txt");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_regular(&path, 5).unwrap(), b"12345");
        let err = read_regular(&path, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "is over 4 bytes, the most read");
        let err = read_regular(&dir, 1024).unwrap_err();
        assert_eq!(err.to_string(), "is a directory, not a regular file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_and_an_endless_device_are_refused_without_reading() {
        assert_eq!(
            read_regular(Path::new("/dev/zero"), 1024)
                .unwrap_err()
                .to_string(),
            "is a character device, not a regular file"
        );
        let dir = std::env::temp_dir().join(format!("tryon-api-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening it would block for ever: the refusal comes first.
        assert_eq!(
            read_regular(&fifo, 1024).unwrap_err().to_string(),
            "is a FIFO (named pipe), not a regular file"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
