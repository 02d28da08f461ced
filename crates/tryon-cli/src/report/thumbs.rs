//! Thumbnails of a report's local images, made once and kept beside the
//! outputs in `DIR/.tryon-report/thumbs/`.
//!
//! **Files, not `data:` URIs.** A catalog batch of 10,000 rows shows some
//! 30,000 images; as `data:` URIs (over 10 KiB each once base64-encoded)
//! the page would weigh hundreds of megabytes, be written again in full on
//! every run, and make a browser decode every one before showing a row. As
//! files, the page stays about a kilobyte a row, a browser loads only the
//! thumbnails of the rows it shows (see `html::STYLE`), and each thumbnail
//! is made once. The page refers to them relatively
//! (`.tryon-report/thumbs/…`), so it works wherever `DIR` is copied.
//!
//! **Made once.** A thumbnail is named after a hash of its source's path,
//! size and modification time: a source that has not changed finds its
//! thumbnail (checked to be a whole JPEG, not a link) and is not read
//! again; an edited source gets a new one. The source is only ever read.
//!
//! **Bounded, whatever the file.** Each source is read through the
//! client's one image reader, [`tryon_client::read_image_file`] (regular
//! files only, so a FIFO or `/dev/zero` is refused from its metadata; at
//! most [`MAX_SOURCE_BYTES`] read; the header's size held to 10,000 px a
//! side and 25 megapixels, so a PNG bomb is refused before anything
//! decodes it), then decoded with the `image` crate's allocation limit.
//! What cannot be shown gets a placeholder saying why ([`Thumb::Missing`]).
//!
//! **Off the batch's path.** Thumbnails are made by one task, `workers` at
//! a time, each decode on the blocking pool: a batch asks for one at a time
//! (a core's worth at most), as its rows complete, and never waits for one
//! until its last row is done.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{FOLDER, write_whole};
use crate::names;

/// Most bytes read of a source image: the client's download cap, the
/// largest output a batch can have saved.
pub const MAX_SOURCE_BYTES: usize = 50 * 1024 * 1024;

/// A thumbnail fits in this box (twice the size the page shows, for
/// high-density screens).
pub const BOX: (u32, u32) = (180, 240);

/// JPEG quality of a thumbnail.
const QUALITY: u8 = 70;

/// Most bytes a decode may allocate: a 25-megapixel image as RGBA, twice.
const MAX_DECODE_ALLOC: u64 = 200 * 1024 * 1024;

/// Changes when thumbnails are made differently, so old ones are not used.
const VERSION: &[u8] = b"tryon-thumb-1";

/// The folder of thumbnails in a batch's output folder.
pub const THUMBS: &str = "thumbs";

/// What the page shows for a local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thumb {
    /// Its thumbnail, by its path relative to the page.
    Made(String),
    /// None: why.
    Missing(String),
}

/// Makes thumbnails on a task of its own: [`add`](Self::add) queues a
/// file (without waiting), [`finish`](Self::finish) waits for every
/// queued one and returns them all.
#[derive(Debug)]
pub struct Thumbnailer {
    sender: mpsc::UnboundedSender<Option<PathBuf>>,
    stop: Arc<AtomicBool>,
    task: std::sync::Mutex<Option<JoinHandle<HashMap<PathBuf, Thumb>>>>,
}

impl Thumbnailer {
    /// Start making thumbnails for the report in `dir`, `workers` at a
    /// time. Must be called on a Tokio runtime.
    pub fn start(dir: &Path, workers: usize) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(
            dir.to_path_buf(),
            receiver,
            workers.max(1),
            Arc::clone(&stop),
        ));
        Self {
            sender,
            stop,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// Queue `source` (a file queued twice is made once).
    pub fn add(&self, source: &Path) {
        let _ = self.sender.send(Some(source.to_path_buf()));
    }

    /// Make no more thumbnails: those queued and not yet made are looked
    /// up in the cache only (for an interrupted run, which should end now).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Wait for every queued file; each one's thumbnail, by its path. A
    /// second call returns nothing.
    pub async fn finish(&self) -> HashMap<PathBuf, Thumb> {
        let _ = self.sender.send(None);
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match task {
            Some(task) => task.await.unwrap_or_default(),
            None => HashMap::new(),
        }
    }
}

async fn run(
    dir: PathBuf,
    receiver: mpsc::UnboundedReceiver<Option<PathBuf>>,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> HashMap<PathBuf, Thumb> {
    let ready = prepare(&dir).map_err(|why| format!("no thumbnail: {why}"));
    let mut seen = HashSet::new();
    futures::stream::unfold(receiver, |mut receiver| async move {
        // `None` (from `finish`) ends the queue, whoever else holds a sender.
        receiver.recv().await.flatten().map(|path| (path, receiver))
    })
    .filter(|path| futures::future::ready(seen.insert(path.clone())))
    .map(|source| {
        let (ready, stop) = (&ready, &stop);
        async move {
            let thumb = match ready {
                Ok(folder) => thumbnail(folder, &source, stop.load(Ordering::Relaxed)).await,
                Err(why) => Thumb::Missing(why.clone()),
            };
            (source, thumb)
        }
    })
    .buffer_unordered(workers)
    .collect()
    .await
}

/// Make `DIR/.tryon-report/thumbs/`, through real folders only.
fn prepare(dir: &Path) -> Result<PathBuf, String> {
    let folder = super::folder(dir)?.join(THUMBS);
    super::real_folder(&folder)?;
    Ok(folder)
}

/// The thumbnail of `source`: from the cache, or made now (unless
/// `stopped`).
async fn thumbnail(folder: &Path, source: &Path, stopped: bool) -> Thumb {
    let meta = match tokio::fs::metadata(source).await {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Thumb::Missing("no file".to_string());
        }
        Err(e) => return Thumb::Missing(e.to_string()),
    };
    let name = format!("{:016x}.jpg", key(source, &meta));
    let made = Thumb::Made(format!("{FOLDER}/{THUMBS}/{name}"));
    let target = folder.join(&name);
    if meta.is_file() && cached(&target).await {
        return made;
    }
    if stopped {
        return Thumb::Missing(
            "not made yet (the run was interrupted): `tryon report DIR` makes it".to_string(),
        );
    }
    // A FIFO, a device or a folder is refused here, from its metadata.
    let bytes = match tryon_client::read_image_file("image", source, MAX_SOURCE_BYTES).await {
        Ok((bytes, _)) => bytes,
        Err(tryon_client::Error::Invalid { problem, .. }) => return Thumb::Missing(problem),
        Err(e) => return Thumb::Missing(e.to_string()),
    };
    let written = tokio::task::spawn_blocking(move || {
        let jpeg = shrink(&bytes)?;
        write_whole(&target, &jpeg, false).map_err(|e| format!("cannot write a thumbnail: {e}"))
    })
    .await;
    match written {
        Ok(Ok(())) => made,
        Ok(Err(why)) => Thumb::Missing(why),
        Err(e) => Thumb::Missing(format!("making the thumbnail failed: {e}")),
    }
}

/// The cache key of a source: its path (resolved, so that `out/a.png`
/// from the batch and `/data/out/a.png` from `tryon report` are one file),
/// size and modification time.
fn key(source: &Path, meta: &std::fs::Metadata) -> u64 {
    let resolved = std::fs::canonicalize(source)
        .or_else(|_| std::path::absolute(source))
        .unwrap_or_else(|_| source.to_path_buf());
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut bytes = VERSION.to_vec();
    bytes.extend_from_slice(resolved.as_os_str().as_encoded_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&meta.len().to_le_bytes());
    bytes.extend_from_slice(&mtime.to_le_bytes());
    names::fnv1a(&bytes)
}

/// Whether a whole thumbnail is at `target`: a regular file (not a link)
/// that the client's reader takes as a JPEG and that ends as one does.
async fn cached(target: &Path) -> bool {
    let regular = tokio::fs::symlink_metadata(target)
        .await
        .is_ok_and(|m| m.is_file());
    if !regular {
        return false;
    }
    match tryon_client::read_image_file("thumbnail", target, 1024 * 1024).await {
        Ok((bytes, checked)) => {
            checked.kind == tryon_client::ImageKind::Jpeg && bytes.ends_with(&[0xFF, 0xD9])
        }
        Err(_) => false,
    }
}

/// Decode `bytes` (already checked by the client's reader) within the
/// allocation limit, fit it in [`BOX`], flatten any transparency on white
/// and encode it as a JPEG.
fn shrink(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(tryon_client::limits::MAX_IMAGE_SIDE);
    limits.max_image_height = Some(tryon_client::limits::MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| format!("cannot decode: {e}"))?;
    let small = image.thumbnail(BOX.0, BOX.1).into_rgba8();
    let flat = image::RgbImage::from_fn(small.width(), small.height(), |x, y| {
        let [r, g, b, a] = small.get_pixel(x, y).0;
        let over = |c: u8| {
            let mixed = (u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a))) / 255;
            u8::try_from(mixed).unwrap_or(u8::MAX)
        };
        image::Rgb([over(r), over(g), over(b)])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, QUALITY)
        .encode_image(&flat)
        .map_err(|e| format!("cannot encode the thumbnail: {e}"))?;
    Ok(jpeg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbaImage::from_fn(width, height, |x, _| {
            image::Rgba([u8::try_from(x % 256).unwrap(), 40, 200, 128])
        });
        let mut bytes = Vec::new();
        image
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        bytes
    }

    /// A PNG whose header declares `width` x `height`, with one empty
    /// zlib block for its data (a few dozen bytes in all).
    fn bomb(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            let mut body = kind.to_vec();
            body.extend_from_slice(data);
            bytes.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
            bytes.extend_from_slice(&body);
            bytes.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        };
        let mut header = width.to_be_bytes().to_vec();
        header.extend_from_slice(&height.to_be_bytes());
        header.extend_from_slice(&[8, 6, 0, 0, 0]);
        chunk(b"IHDR", &header);
        chunk(
            b"IDAT",
            &[
                0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
            ],
        );
        chunk(b"IEND", &[]);
        bytes
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thumbnails_are_made_once_and_hostile_files_get_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("person.png");
        let original = png(600, 800);
        std::fs::write(&source, &original).unwrap();
        let bomb_path = dir.path().join("bomb.png");
        std::fs::write(&bomb_path, bomb(20_000, 20_000)).unwrap();
        let fifo = dir.path().join("fifo.png");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let zero = dir.path().join("zero.png");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let missing = dir.path().join("gone.png");

        let thumbnailer = Thumbnailer::start(dir.path(), 2);
        for path in [&source, &bomb_path, &fifo, &zero, &missing, &source] {
            thumbnailer.add(path);
        }
        let made = thumbnailer.finish().await;
        assert_eq!(made.len(), 5, "{made:?}");
        let Some(Thumb::Made(relative)) = made.get(&source) else {
            panic!("{made:?}");
        };
        let thumb = dir.path().join(relative);
        let small = image::open(&thumb).unwrap();
        assert!(small.width() <= BOX.0 && small.height() <= BOX.1);
        assert_eq!(small.height(), BOX.1, "fits the box, proportions kept");
        assert_eq!(std::fs::read(&source).unwrap(), original, "never rewritten");
        let reason = |path: &Path| match made.get(path) {
            Some(Thumb::Missing(why)) => why.clone(),
            other => panic!("{}: {other:?}", path.display()),
        };
        assert!(
            reason(&bomb_path).contains("at most 10000 px a side"),
            "{}",
            reason(&bomb_path)
        );
        assert!(reason(&fifo).contains("FIFO"), "{}", reason(&fifo));
        assert!(
            reason(&zero).contains("not a regular file"),
            "{}",
            reason(&zero)
        );
        assert_eq!(reason(&missing), "no file");

        // Made once: a second report finds it, even with making stopped,
        // and by another spelling of its path.
        let stamp = std::fs::metadata(&thumb).unwrap().modified().unwrap();
        let again = Thumbnailer::start(dir.path(), 1);
        again.stop();
        let spelled = dir.path().join(".").join("person.png");
        again.add(&spelled);
        assert_eq!(again.finish().await.get(&spelled), made.get(&source));
        assert_eq!(
            std::fs::metadata(&thumb).unwrap().modified().unwrap(),
            stamp
        );

        // A changed source gets a new thumbnail; a cut-short one is remade.
        std::fs::write(&source, png(300, 300)).unwrap();
        let changed = Thumbnailer::start(dir.path(), 1);
        changed.add(&source);
        let Some(Thumb::Made(new)) = changed.finish().await.remove(&source) else {
            panic!("remade");
        };
        assert_ne!(&new, relative);
        let bytes = std::fs::read(dir.path().join(&new)).unwrap();
        std::fs::write(dir.path().join(&new), &bytes[..bytes.len() / 2]).unwrap();
        let torn = Thumbnailer::start(dir.path(), 1);
        torn.add(&source);
        torn.finish().await;
        assert_eq!(std::fs::read(dir.path().join(&new)).unwrap(), bytes);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_link_in_place_of_the_cache_folder_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join(FOLDER)).unwrap();
        let source = dir.path().join("a.png");
        std::fs::write(&source, png(10, 10)).unwrap();
        let thumbnailer = Thumbnailer::start(dir.path(), 1);
        thumbnailer.add(&source);
        let made = thumbnailer.finish().await;
        assert!(
            matches!(made.get(&source), Some(Thumb::Missing(why)) if why.contains("not a folder")),
            "{made:?}"
        );
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }
}
