//! The batch report: one HTML page a person opens in a browser to look at
//! a batch (`DIR/report.html`), one row per manifest row, person |
//! garments | result.
//!
//! This module knows pages, not batches: `batch::page` fills a [`Page`]
//! (which row stands how, what it cost, the command that recovers it, all
//! from the rules the terminal summary uses) and [`write()`] renders it.
//!
//! What the page promises:
//! - **Self-contained, nothing from the network.** No script, no style
//!   sheet, font or image from anywhere: the style is inline, and a
//!   `Content-Security-Policy` meta tag (`default-src 'none'; img-src
//!   'self'; style-src 'unsafe-inline'`) forbids everything else should an
//!   escaping bug ever let markup through. Inputs given as URLs are links,
//!   never `<img>` sources: the page sends no request to a host the user
//!   did not click.
//! - **Thumbnails as files beside the page**, in `DIR/.tryon-report/thumbs/`,
//!   referenced relatively (see [`thumbs`] for why not `data:` URIs): the
//!   page works wherever `DIR` is copied (a CI artifact, a shared drive).
//! - **Hostile text stays text**: every piece of text goes through
//!   [`html::escape`] (attributes too), after the terminal's own
//!   [`crate::term::printable`] has made control characters visible.
//! - **Filters without script**: a radio input per status and CSS sibling
//!   selectors.
//! - **Written whole**: a temporary file in `DIR` renamed over
//!   `report.html`, so a reader never sees half a page.

mod html;
pub mod thumbs;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use thumbs::{Thumb, Thumbnailer};

/// The page's file name in the batch's output folder.
pub const FILE_NAME: &str = "report.html";

/// The folder beside the page that holds what it uses (thumbnails, the
/// last run's record); hidden, so that `ls DIR` shows the outputs.
pub const FOLDER: &str = ".tryon-report";

/// A report page, ready to render.
#[derive(Debug, Default)]
pub struct Page {
    /// The heading.
    pub title: String,
    /// Label and value pairs shown at the top (when it ran, what it cost).
    pub facts: Vec<(String, String)>,
    /// Warnings shown at the top.
    pub notes: Vec<String>,
    /// Each status with its row count, in the order the filters show them.
    pub tallies: Vec<Tally>,
    /// One per manifest row, in manifest order.
    pub rows: Vec<Row>,
}

/// A status and how many rows stand so.
#[derive(Debug, Clone)]
pub struct Tally {
    /// The status's key: a CSS class and the filter's id (`[a-z-]+`).
    pub key: String,
    /// Its name for people.
    pub name: String,
    /// How many rows.
    pub count: usize,
    /// What it means.
    pub help: Option<String>,
}

/// One manifest row on the page.
#[derive(Debug, Clone)]
pub struct Row {
    /// The row id.
    pub id: String,
    /// The key of its [`Tally`].
    pub status: String,
    /// The person image.
    pub person: Picture,
    /// The garment images.
    pub garments: Vec<Picture>,
    /// The reference pose, if one was given.
    pub pose: Option<Picture>,
    /// The result: its file (in `DIR`) or why there is none.
    pub result: Picture,
    /// Short facts (job time, cost, request id).
    pub facts: Vec<String>,
    /// The prompt, if any.
    pub prompt: Option<String>,
    /// Why the row stands so (the FAILED job's error text, ...).
    pub message: Option<String>,
    /// What to run next, with a label saying what it does.
    pub command: Option<(String, String)>,
    /// The images of its earlier jobs kept beside the outputs (an edited
    /// row's), each with what became of it.
    pub earlier: Vec<Earlier>,
}

/// An image of an edited row's earlier job.
#[derive(Debug, Clone)]
pub struct Earlier {
    /// The kept image, or why there is none.
    pub picture: Picture,
    /// What became of it.
    pub note: String,
}

/// An image of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picture {
    /// A local file: shown as its thumbnail.
    File(PathBuf),
    /// A URL: shown as a link, never fetched.
    Url(String),
    /// Nothing to show, and why (a `data:` URI given inline, no result).
    Absent(String),
}

impl Page {
    /// Every local file the page shows, for the thumbnailer.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.rows.iter().flat_map(|row| {
            std::iter::once(&row.person)
                .chain(&row.garments)
                .chain(&row.pose)
                .chain(std::iter::once(&row.result))
                .chain(row.earlier.iter().map(|e| &e.picture))
                .filter_map(|picture| match picture {
                    Picture::File(path) => Some(path.as_path()),
                    _ => None,
                })
        })
    }
}

/// Write `page` to `DIR/report.html` (whole, through a rename), with the
/// thumbnails `thumbnails` makes of its files (each made once: a
/// thumbnail already in the cache is not made again). Returns the page's
/// path, or why it could not be written.
pub async fn write(dir: &Path, page: &Page, thumbnails: &Thumbnailer) -> Result<PathBuf, String> {
    for file in page.files() {
        thumbnails.add(file);
    }
    let made = thumbnails.finish().await;
    let text = html::render(page, &made);
    let path = dir.join(FILE_NAME);
    write_whole(&path, text.as_bytes(), true)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// `DIR/.tryon-report`, made if missing; refused when something other
/// than a real folder is there (a link could point anywhere).
pub fn folder(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join(FOLDER);
    real_folder(&path)?;
    Ok(path)
}

/// Make `path` a folder if nothing is there; `Ok` when it is a real one
/// (made by this call or, at the same moment, by another: a run's record
/// and its thumbnailer both make it when the run starts).
fn real_folder(path: &Path) -> Result<(), String> {
    let real = || std::fs::symlink_metadata(path).map(|m| m.is_dir());
    match real() {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "{} is not a folder (a link or a file)",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && real().unwrap_or(false) => {
                Ok(())
            }
            Err(e) => Err(format!("cannot make {}: {e}", path.display())),
        },
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Write `bytes` to `path` through a new temporary file in the same folder
/// and a rename: `path` is either as it was or whole. With `durable`, the
/// file is synced before the rename. A link at `path` is replaced, never
/// followed.
pub fn write_whole(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        // `create_new`: never through a link or over another's file.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_made_once_whoever_makes_it_first() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let made: Vec<Result<PathBuf, String>> = std::thread::scope(|s| {
                let racers: Vec<_> = (0..4).map(|_| s.spawn(|| folder(dir.path()))).collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            assert!(made.iter().all(Result::is_ok), "{made:?}");
        }
    }

    #[test]
    fn a_whole_write_replaces_a_link_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere.txt");
        std::fs::write(&target, "keep me").unwrap();
        let path = dir.path().join("report.html");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_whole(&path, b"<p>new</p>", true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "<p>new</p>");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");

        // A folder in the way: an error, and still no temporary file.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), "").unwrap();
        assert!(write_whole(&blocked, b"x", false).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }
}
