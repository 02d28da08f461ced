//! What a batch row sends, canonically ([`Inputs`]), and the fingerprint the
//! journal keys the row's records on.
//!
//! A row is its id plus what it sends, not how its paths were typed: `batch
//! m.csv`, `batch ./m.csv`, `batch sub/m.csv` and `batch $PWD/sub/m.csv` are
//! the same rows. [`Inputs`] holds every request field as sent (defaults
//! filled in by the client's request) and each image by what it is: a local
//! file or a `data:` URI by the SHA-256 of its bytes, as the client's one
//! image reader read them when the row was validated
//! ([`tryon_client::CheckedImage::sha256`]); an `http(s)` URL as given after
//! URL normalisation (scheme and host lowercased, the default port and dot
//! segments dropped). The fingerprint is 32 hex digits (128 bits) of the
//! SHA-256 of the inputs' JSON with the file names left out, so moving or
//! renaming an image changes nothing and editing one changes the row.
//!
//! The journal's `submitting` record carries the inputs too, so a row edited
//! since its job can be told what changed ([`changes`]).
//!
//! Journals written before this form (fingerprints of 16 hex digits: FNV-1a
//! over the row with its paths joined to the manifest's folder as typed) are
//! still recognised: [`legacy_forms`] recomputes that form for the folder as
//! typed now and for the other spellings of the same folder, so no earlier
//! record is orphaned by the change.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tryon_client::{Preflight, TryOnRequest};

use crate::manifest::{Row, resolve};
use crate::names;

/// An image input by what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageInput {
    /// A remote image the service fetches, by its normalised URL.
    Url {
        /// The URL.
        url: String,
    },
    /// Local bytes (a file or a `data:` URI), by their hash.
    Content {
        /// SHA-256 of the bytes, 64 hex digits.
        sha256: String,
        /// The file as the manifest named it (resolved against its
        /// folder), for messages only: not part of the fingerprint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
}

impl ImageInput {
    fn without_file(&self) -> Self {
        match self {
            ImageInput::Content { sha256, .. } => ImageInput::Content {
                sha256: sha256.clone(),
                file: None,
            },
            url @ ImageInput::Url { .. } => url.clone(),
        }
    }

    /// For messages: the URL, or the file (or `data: URI`) and a short hash.
    fn shown(&self) -> String {
        match self {
            ImageInput::Url { url } => url.clone(),
            ImageInput::Content { sha256, file } => format!(
                "{} (sha256 {})",
                file.as_deref().unwrap_or("data: URI"),
                &sha256[..sha256.len().min(12)]
            ),
        }
    }

    fn same(&self, other: &Self) -> bool {
        self.without_file() == other.without_file()
    }
}

/// Everything a row's request sends, canonically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// `person_image`.
    pub person: ImageInput,
    /// `garment_images`, in order.
    pub garments: Vec<ImageInput>,
    /// `reference_pose`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_pose: Option<ImageInput>,
    /// `prompt` (empty when none).
    pub prompt: String,
    /// `seed`.
    pub seed: Option<u64>,
    /// `turbo`.
    pub turbo: bool,
    /// `output_format`.
    pub format: String,
    /// `output_quality`.
    pub quality: u8,
    /// `preserve_input_size`.
    pub preserve_input_size: bool,
}

impl Inputs {
    /// The inputs of `row`, whose validated request is `request` and whose
    /// local images `preflight` read (the client's own reader).
    pub fn of(row: &Row, request: &TryOnRequest, preflight: &Preflight) -> Self {
        let image = |field: &str, value: &str| {
            let checked = preflight.local.iter().find(|c| c.field == field);
            match checked {
                Some(c) => ImageInput::Content {
                    sha256: hex(&c.sha256),
                    file: (!value.trim_start().to_ascii_lowercase().starts_with("data:"))
                        .then(|| value.to_string()),
                },
                None => ImageInput::Url {
                    url: normalise_url(value),
                },
            }
        };
        Self {
            person: image("person_image", &row.person),
            garments: row
                .garments
                .iter()
                .enumerate()
                .map(|(i, g)| image(&format!("garment_images[{i}]"), g))
                .collect(),
            reference_pose: row
                .reference_pose
                .as_deref()
                .map(|p| image("reference_pose", p)),
            prompt: request.prompt().to_string(),
            seed: request.seed(),
            turbo: request.turbo(),
            format: request.output_format().extension().to_string(),
            quality: request.output_quality(),
            preserve_input_size: request.preserve_input_size(),
        }
    }

    /// The fingerprint: 32 hex digits of the SHA-256 of the inputs' JSON,
    /// file names left out.
    pub fn fingerprint(&self) -> String {
        let canonical = Self {
            person: self.person.without_file(),
            garments: self.garments.iter().map(ImageInput::without_file).collect(),
            reference_pose: self.reference_pose.as_ref().map(ImageInput::without_file),
            ..self.clone()
        };
        let json = serde_json::to_vec(&canonical).unwrap_or_default();
        hex(&Sha256::digest(json)[..16])
    }

    /// As journal JSON.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The request body these inputs send, in the form the workspace's one
    /// body rule compares ([`tryon_client::tryon_api::body`]): every field by its wire
    /// name, a local image as `sha256:<hex>` of its bytes (what an inline
    /// image becomes under the rule), a URL as normalised here. The
    /// account's history lists a request's body as sent; matched against
    /// this after [`history_form`], it says whether that request is this
    /// row's.
    pub fn wire_form(&self) -> serde_json::Value {
        let image = |i: &ImageInput| match i {
            ImageInput::Url { url } => serde_json::Value::from(url.as_str()),
            ImageInput::Content { sha256, .. } => format!("sha256:{sha256}").into(),
        };
        let mut body = serde_json::json!({
            "person_image": image(&self.person),
            "garment_images": self.garments.iter().map(image).collect::<Vec<_>>(),
            "prompt": self.prompt,
            "turbo": self.turbo,
            "output_format": self.format,
            "output_quality": self.quality,
            "preserve_input_size": self.preserve_input_size,
        });
        if let Some(pose) = &self.reference_pose {
            body["reference_pose"] = image(pose);
        }
        if let Some(seed) = self.seed {
            body["seed"] = seed.into();
        }
        body
    }
}

/// A request body as the account's history lists it, in the form
/// [`Inputs::wire_form`](crate::fingerprint::Inputs::wire_form) is compared in: inline images as their
/// `sha256:<hex>`, every http(s) URL normalised as the inputs' are.
pub fn history_form(body: &serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    fn urls(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s)
                if s.starts_with("http://") || s.starts_with("https://") =>
            {
                *s = normalise_url(s);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(urls),
            serde_json::Value::Object(map) => map.values_mut().for_each(urls),
            _ => {}
        }
    }
    let mut v = serde_json::Value::Object(body.clone());
    tryon_client::tryon_api::body::hash_inline_images(&mut v, &mut |_, _, _| {});
    urls(&mut v);
    v
}

/// An `http(s)` URL normalised by the URL standard's parser; anything else
/// (or a URL that does not parse) as given, trimmed.
fn normalise_url(value: &str) -> String {
    let value = value.trim();
    url::Url::parse(value).map_or_else(|_| value.to_string(), String::from)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What differs between a row's earlier inputs (`old`, as the journal
/// recorded them) and its inputs now, field by field (`seed: 1000 -> 7`).
pub fn changes(old: &Inputs, new: &Inputs) -> Vec<String> {
    let mut out = Vec::new();
    let mut image = |name: String, a: Option<&ImageInput>, b: Option<&ImageInput>| {
        let same = match (a, b) {
            (Some(a), Some(b)) => a.same(b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            let shown =
                |i: Option<&ImageInput>| i.map_or_else(|| "(none)".into(), ImageInput::shown);
            out.push(format!("{name}: {} -> {}", shown(a), shown(b)));
        }
    };
    image("person".into(), Some(&old.person), Some(&new.person));
    for i in 0..old.garments.len().max(new.garments.len()) {
        image(
            format!("garments[{i}]"),
            old.garments.get(i),
            new.garments.get(i),
        );
    }
    image(
        "reference_pose".into(),
        old.reference_pose.as_ref(),
        new.reference_pose.as_ref(),
    );
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name}: {a} -> {b}"));
        }
    };
    field(
        "prompt",
        format!("{:?}", old.prompt),
        format!("{:?}", new.prompt),
    );
    let seed = |s: Option<u64>| s.map_or_else(|| "(none)".into(), |s| s.to_string());
    field("seed", seed(old.seed), seed(new.seed));
    field("turbo", old.turbo.to_string(), new.turbo.to_string());
    field("format", old.format.clone(), new.format.clone());
    field("quality", old.quality.to_string(), new.quality.to_string());
    field(
        "preserve_input_size",
        old.preserve_input_size.to_string(),
        new.preserve_input_size.to_string(),
    );
    out
}

/// What changed, for a row whose earlier records carry `old` (journal
/// JSON, absent in records written before inputs were recorded).
pub fn describe_changes(old: Option<&serde_json::Value>, new: &Inputs) -> String {
    let old = old.and_then(|v| serde_json::from_value::<Inputs>(v.clone()).ok());
    match old {
        Some(old) => {
            let list = changes(&old, new);
            if list.is_empty() {
                // Same inputs under another fingerprint: only possible for
                // records of an older tryon.
                "the journal's earlier records use another fingerprint for the same inputs".into()
            } else {
                list.join("; ")
            }
        }
        None => "the journal's earlier records for this id were written by an older tryon, \
                 which did not record the inputs, so what changed cannot be said"
            .into(),
    }
}

/// The fingerprint older versions of tryon wrote: FNV-1a over the row's
/// JSON with its paths joined to the manifest's folder as typed. Kept to
/// recognise their journals; never written.
pub fn legacy(row: &Row) -> String {
    let canonical = serde_json::to_vec(row).unwrap_or_default();
    format!("{:016x}", names::fnv1a(&canonical))
}

/// The legacy fingerprints `row` had under each spelling of its
/// manifest's folder an older tryon may have been given: the folder as
/// typed now, `""` and `.` (run from inside it), its absolute paths, and its
/// path relative to each folder above it, with and without `./`.
pub fn legacy_forms(row: &Row) -> BTreeSet<String> {
    spellings(&row.base)
        .iter()
        .map(|base| legacy(&row.with_base(base)))
        .collect()
}

fn spellings(base: &Path) -> Vec<PathBuf> {
    let mut out = vec![base.to_path_buf(), PathBuf::new(), PathBuf::from(".")];
    let absolutes = [
        std::fs::canonicalize(base).ok(),
        std::path::absolute(base).ok(),
    ];
    for absolute in absolutes.into_iter().flatten() {
        for above in absolute.ancestors().skip(1) {
            if let Ok(relative) = absolute.strip_prefix(above) {
                out.push(relative.to_path_buf());
                out.push(Path::new(".").join(relative));
            }
        }
        out.push(absolute);
    }
    out
}

impl Row {
    /// This row with its relative paths joined to `base` instead.
    fn with_base(&self, base: &Path) -> Row {
        let typed = &self.typed;
        Row {
            person: resolve(base, &typed.person),
            garments: typed.garments.iter().map(|g| resolve(base, g)).collect(),
            reference_pose: typed.reference_pose.as_deref().map(|p| resolve(base, p)),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;

    fn rows(text: &str, base: &str) -> Vec<Row> {
        manifest::parse(Path::new("m.csv"), text, Path::new(base)).unwrap()
    }

    #[test]
    fn the_legacy_form_is_what_older_versions_wrote() {
        // Read from journals tryon wrote at e685f7e for this manifest, run
        // as `batch m.csv` and as `batch ./m.csv` from its folder: the
        // records such journals hold must still match.
        let text = "id,person,garments\nr1,person.png,garment.png\n";
        assert_eq!(legacy(&rows(text, "")[0]), "8cb9ead09b45bf0c");
        assert_eq!(legacy(&rows(text, ".")[0]), "bc3b3ceb59d578e6");
        let forms = legacy_forms(&rows(text, "")[0]);
        assert!(forms.contains("8cb9ead09b45bf0c"), "{forms:?}");
        assert!(forms.contains("bc3b3ceb59d578e6"), "{forms:?}");
    }

    #[test]
    fn legacy_forms_cover_other_spellings_of_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let text = "id,person,garments\na,p.png,g.png\n";
        let typed_inside = &rows(text, "")[0];
        let from_parent = rows(text, &sub.display().to_string());
        let forms = legacy_forms(&from_parent[0]);
        assert!(forms.contains(&legacy(typed_inside)), "`m.csv` from inside");
        assert!(forms.contains(&legacy(&rows(text, ".")[0])), "`./m.csv`");
        assert!(
            forms.contains(&legacy(&rows(text, "sub")[0])),
            "`sub/m.csv`"
        );
        assert!(
            forms.contains(&legacy(&rows(text, "./sub")[0])),
            "`./sub/m.csv`"
        );
    }

    fn inputs(seed: Option<u64>, garment: &str) -> Inputs {
        Inputs {
            person: ImageInput::Content {
                sha256: "ab".repeat(32),
                file: Some("f1/p.png".into()),
            },
            garments: vec![ImageInput::Url {
                url: garment.into(),
            }],
            reference_pose: None,
            prompt: String::new(),
            seed,
            turbo: false,
            format: "png".into(),
            quality: 95,
            preserve_input_size: false,
        }
    }

    #[test]
    fn the_fingerprint_is_the_content_not_the_file_name() {
        let a = inputs(Some(1), "https://x.test/g.jpg");
        let mut moved = a.clone();
        moved.person = ImageInput::Content {
            sha256: "ab".repeat(32),
            file: Some("/abs/elsewhere/p.png".into()),
        };
        assert_eq!(a.fingerprint(), moved.fingerprint());
        assert_eq!(a.fingerprint().len(), 32);
        assert!(changes(&a, &moved).is_empty());
        let edited = inputs(Some(7), "https://x.test/h.jpg");
        assert_ne!(a.fingerprint(), edited.fingerprint());
        assert_eq!(
            changes(&a, &edited),
            [
                "garments[0]: https://x.test/g.jpg -> https://x.test/h.jpg",
                "seed: 1 -> 7"
            ]
        );
        let back: Inputs = serde_json::from_value(edited.to_value()).unwrap();
        assert_eq!(back, edited, "the journal's JSON reads back");
    }

    #[test]
    fn urls_are_normalised() {
        assert_eq!(
            normalise_url(" HTTPS://Example.COM:443/a/./b.jpg "),
            "https://example.com/a/b.jpg"
        );
        assert_eq!(normalise_url("not a url"), "not a url");
    }
}
