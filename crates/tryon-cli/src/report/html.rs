//! Rendering a [`Page`] as one HTML document. Every piece of text that
//! reaches the markup goes through [`put`] (text and attribute values
//! alike, every attribute double-quoted); markup is only ever written by
//! this file's own literals.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{Page, Picture, Row, Thumb};
use crate::term;

/// The policy the page states about itself: nothing but its own inline
/// style and images from its own folder. No script at all (the filters are
/// CSS), no fetch, no frame, no form, no `<base>`.
pub const CSP: &str = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/// Longest row id shown, in characters (the rest is cut, and said so).
const MAX_ID: usize = 300;
/// Longest prompt shown.
const MAX_PROMPT: usize = 2_000;
/// Longest message (a FAILED job's error text) shown.
const MAX_MESSAGE: usize = 8_000;
/// Longest path or URL shown in a caption or a title.
const MAX_NAME: usize = 500;

/// `text` with the five characters that mean something in HTML replaced by
/// their references (`&`, `<`, `>`, `"`, `'`): safe between tags and in a
/// double- or single-quoted attribute value.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Append `text` for people: control characters and bidirectional
/// overrides made visible as the terminal shows them
/// ([`term::printable`]), cut at `max` characters, then escaped.
fn put(out: &mut String, text: &str, max: usize) {
    let shown = term::printable(text);
    match shown.char_indices().nth(max) {
        Some((end, _)) => {
            out.push_str(&escape(&shown[..end]));
            let _ = write!(out, "… ({} more characters)", shown[end..].chars().count());
        }
        None => out.push_str(&escape(&shown)),
    }
}

/// The style: plain CSS, the filters included (one rule per status, added
/// by [`render`]).
///
/// THUMBNAILS are the background of a `role="img"` box in a row with
/// `content-visibility: auto`, not `<img loading="lazy">`: whether and how
/// far a browser defers a lazy image is its own choice (headless Chromium
/// 148 had loaded one 20,000 px below the fold by the load event, from
/// `file://` and from `http://` alike), and a page of 10,000 rows whose
/// 40,000 distinct thumbnails were `<img>`s had not loaded after five
/// minutes. A row off screen has no style computed, so its backgrounds are
/// fetched when it comes into view: the same page loads in about a second
/// (`benches/report.rs` counts what is fetched).
const STYLE: &str = "\
:root{--ok:#1a7f37;--bad:#cf222e;--wait:#9a6700;--paid:#8250df;--unk:#bc4c00;--idle:#6e7781;--skip:#0969da}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;background:#f6f8fa}
header{padding:16px 24px 12px;background:#fff;border-bottom:1px solid #d0d7de}
h1{font-size:20px;margin:0 0 10px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dt{color:#57606a}dd{margin:0;word-break:break-word}
.note{margin:10px 0 0;padding:6px 10px;border-radius:6px;background:#fff8c5;border:1px solid #d4a72c}
input.f{position:absolute;opacity:0;width:1px;height:1px}
nav{position:sticky;top:0;z-index:1;display:flex;flex-wrap:wrap;gap:6px;padding:10px 24px;background:#fff;border-bottom:1px solid #d0d7de}
nav label{border:1px solid #d0d7de;border-radius:999px;padding:2px 10px;cursor:pointer;background:#fff;user-select:none}
nav label b{font-weight:600}nav label.zero{color:#8c959f}
input.f:focus-visible~nav{outline:2px solid #0969da}
main{padding:12px 24px 24px}
.r{display:grid;grid-template-columns:230px 1fr;gap:6px 16px;background:#fff;border:1px solid #d0d7de;border-left:5px solid var(--c);border-radius:6px;padding:10px 12px;margin:0 0 8px;content-visibility:auto;contain-intrinsic-size:auto 178px}
.completed{--c:var(--ok)}.failed{--c:var(--bad)}.pending{--c:var(--wait)}.unsaved{--c:var(--paid)}.ambiguous{--c:var(--unk)}.not-sent{--c:var(--idle)}.skipped{--c:var(--skip)}
.id{font-weight:600;word-break:break-all;margin:0 0 4px}
.st{display:inline-block;font-size:12px;font-weight:600;color:#fff;background:var(--c);border-radius:4px;padding:0 6px}
.meta ul{list-style:none;margin:4px 0 0;padding:0;color:#57606a;font-size:12px;word-break:break-all}
.prompt{font-size:12px;color:#57606a;margin:4px 0 0;word-break:break-word}
.strip{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}
figure{margin:0;width:90px;font-size:11px;color:#57606a;text-align:center}
figcaption{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.im,.ph{display:block;width:90px;height:120px;border-radius:4px;background:#eaeef2 center/contain no-repeat}
.ph{display:flex;align-items:center;justify-content:center;padding:4px;overflow:hidden;overflow-wrap:anywhere;text-align:center;font-size:10px;line-height:1.25;color:#57606a}
a.ph{color:#0969da;text-decoration:none}a.ph:hover{text-decoration:underline}
.to{align-self:center;color:#8c959f;font-size:20px;padding:0 2px}
.msg,.cmd{grid-column:1/-1;margin:0;white-space:pre-wrap;word-break:break-word;border-radius:4px;padding:6px 8px;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.msg{background:#fff8f8;border:1px solid #ffcecb}
.kept{grid-column:1/-1;margin:0;padding-left:18px;font-size:12px;color:#57606a}
.cmd{background:#f6f8fa;border:1px solid #d0d7de}.cmd span{display:block;color:#57606a;font-family:system-ui,sans-serif}
footer{padding:0 24px 24px;color:#57606a;font-size:12px}
";

/// The whole document.
pub fn render(page: &Page, thumbs: &HashMap<PathBuf, Thumb>) -> String {
    // About 1 KiB a row; reserving it spares the copies of a growing page.
    let mut out = String::with_capacity(8_192 + page.rows.len() * 1_100);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    let _ = writeln!(
        out,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
        escape(CSP)
    );
    out.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    out.push_str(
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
    );
    put(&mut out, &page.title, MAX_NAME);
    out.push_str("</title>\n<style>\n");
    out.push_str(STYLE);
    for tally in &page.tallies {
        let key = escape(&tally.key);
        let _ = writeln!(
            out,
            "#f-{key}:checked~main .r:not(.{key}){{display:none}}#f-{key}:checked~nav label[for=f-{key}]{{background:#1f2328;color:#fff}}"
        );
    }
    out.push_str("#f-all:checked~nav label[for=f-all]{background:#1f2328;color:#fff}\n</style>\n</head>\n<body>\n<header><h1>");
    put(&mut out, &page.title, MAX_NAME);
    out.push_str("</h1>\n<dl>");
    for (label, value) in &page.facts {
        out.push_str("<dt>");
        put(&mut out, label, MAX_NAME);
        out.push_str("</dt><dd>");
        put(&mut out, value, MAX_MESSAGE);
        out.push_str("</dd>");
    }
    out.push_str("</dl>\n");
    for note in &page.notes {
        out.push_str("<p class=\"note\">");
        put(&mut out, note, MAX_MESSAGE);
        out.push_str("</p>\n");
    }
    out.push_str("</header>\n");
    filters(&mut out, page);
    out.push_str("<main>\n");
    for (index, row) in page.rows.iter().enumerate() {
        render_row(&mut out, index, row, page, thumbs);
    }
    out.push_str("</main>\n<footer>Written by tryon ");
    out.push_str(env!("CARGO_PKG_VERSION"));
    out.push_str(
        ". This page loads nothing from the network: thumbnails are files in .tryon-report/ beside it; \
         inputs given as URLs are links, fetched only if you follow them.</footer>\n</body></html>\n",
    );
    out
}

/// One radio input per status (siblings of `nav` and `main`, so that CSS
/// can read which is checked), then their labels.
fn filters(out: &mut String, page: &Page) {
    out.push_str("<input class=\"f\" type=\"radio\" name=\"show\" id=\"f-all\" checked>\n");
    for tally in &page.tallies {
        let _ = writeln!(
            out,
            "<input class=\"f\" type=\"radio\" name=\"show\" id=\"f-{}\">",
            escape(&tally.key)
        );
    }
    let _ = write!(
        out,
        "<nav aria-label=\"show rows\"><label for=\"f-all\">all <b>{}</b></label>",
        page.rows.len()
    );
    for tally in &page.tallies {
        let _ = write!(
            out,
            "<label for=\"f-{}\"{} title=\"",
            escape(&tally.key),
            if tally.count == 0 {
                " class=\"zero\""
            } else {
                ""
            }
        );
        put(out, tally.help.as_deref().unwrap_or(&tally.name), MAX_NAME);
        out.push_str("\">");
        put(out, &tally.name, MAX_NAME);
        let _ = write!(out, " <b>{}</b></label>", tally.count);
    }
    out.push_str("</nav>\n");
}

fn render_row(
    out: &mut String,
    index: usize,
    row: &Row,
    page: &Page,
    thumbs: &HashMap<PathBuf, Thumb>,
) {
    let name = page
        .tallies
        .iter()
        .find(|t| t.key == row.status)
        .map_or(row.status.as_str(), |t| t.name.as_str());
    let _ = write!(
        out,
        "<section class=\"r {}\" id=\"r{index}\"><div class=\"meta\"><p class=\"id\">",
        escape(&row.status)
    );
    put(out, &row.id, MAX_ID);
    out.push_str("</p><span class=\"st\">");
    put(out, name, MAX_NAME);
    out.push_str("</span>");
    if !row.facts.is_empty() {
        list(out, "<ul>", row.facts.iter().map(String::as_str), MAX_NAME);
    }
    if let Some(prompt) = &row.prompt {
        out.push_str("<p class=\"prompt\">prompt: ");
        put(out, prompt, MAX_PROMPT);
        out.push_str("</p>");
    }
    out.push_str("</div><div class=\"strip\">");
    picture(out, &row.person, "person", thumbs);
    for (i, garment) in row.garments.iter().enumerate() {
        let label = if row.garments.len() == 1 {
            "garment".to_string()
        } else {
            format!("garment {}", i + 1)
        };
        picture(out, garment, &label, thumbs);
    }
    if let Some(pose) = &row.pose {
        picture(out, pose, "pose", thumbs);
    }
    out.push_str("<span class=\"to\" aria-hidden=\"true\">→</span>");
    picture(out, &row.result, "result", thumbs);
    for earlier in &row.earlier {
        picture(out, &earlier.picture, "earlier", thumbs);
    }
    out.push_str("</div>");
    if let Some(message) = &row.message {
        out.push_str("<pre class=\"msg\">");
        put(out, message, MAX_MESSAGE);
        out.push_str("</pre>");
    }
    if !row.earlier.is_empty() {
        let notes = row.earlier.iter().map(|e| e.note.as_str());
        list(out, "<ul class=\"kept\">", notes, MAX_MESSAGE);
    }
    if let Some((label, command)) = &row.command {
        out.push_str("<pre class=\"cmd\"><span>");
        put(out, label, MAX_NAME);
        out.push_str("</span>");
        // Never cut: it must run as shown.
        put(out, command, usize::MAX);
        out.push_str("</pre>");
    }
    out.push_str("</section>\n");
}

/// A list: `open` (this file's own `<ul>` literal), then each item as text,
/// cut at `max` characters.
fn list<'a>(out: &mut String, open: &str, items: impl Iterator<Item = &'a str>, max: usize) {
    out.push_str(open);
    for item in items {
        out.push_str("<li>");
        put(out, item, max);
        out.push_str("</li>");
    }
    out.push_str("</ul>");
}

/// One image of a row: a thumbnail, a link for a URL, or a box saying why
/// there is neither.
fn picture(out: &mut String, picture: &Picture, label: &str, thumbs: &HashMap<PathBuf, Thumb>) {
    out.push_str("<figure>");
    match picture {
        Picture::File(path) => {
            let shown = path.display().to_string();
            match thumbs.get(path) {
                Some(Thumb::Made(src)) if src.bytes().all(url_safe) => {
                    let link = result_link(label, path);
                    if let Some(href) = &link {
                        out.push_str("<a href=\"");
                        put(out, href, usize::MAX);
                        out.push_str("\">");
                    }
                    // A background, not an <img>: see THUMBNAILS.
                    out.push_str("<span class=\"im\" role=\"img\" aria-label=\"");
                    put(out, label, MAX_NAME);
                    out.push_str("\" title=\"");
                    put(out, &shown, MAX_NAME);
                    out.push_str("\" style=\"background-image:url(");
                    out.push_str(src);
                    out.push_str(")\"></span>");
                    if link.is_some() {
                        out.push_str("</a>");
                    }
                }
                Some(Thumb::Missing(why)) => placeholder(out, why, &shown),
                Some(Thumb::Made(_)) | None => placeholder(out, "no thumbnail", &shown),
            }
        }
        Picture::Url(url) => {
            if is_web_link(url) {
                out.push_str("<a class=\"ph\" href=\"");
                put(out, url, usize::MAX);
                out.push_str("\" rel=\"noreferrer noopener\" target=\"_blank\" title=\"");
                put(out, url, MAX_NAME);
                out.push_str("\">");
                put(out, &short_url(url), MAX_NAME);
                out.push_str("</a>");
            } else {
                placeholder(out, "not a web link (not shown)", url);
            }
        }
        Picture::Absent(why) => placeholder(out, why, why),
    }
    out.push_str("<figcaption>");
    put(out, label, MAX_NAME);
    out.push_str("</figcaption></figure>");
}

fn placeholder(out: &mut String, text: &str, title: &str) {
    out.push_str("<span class=\"ph\" title=\"");
    put(out, title, MAX_NAME);
    out.push_str("\">");
    put(out, text, MAX_NAME);
    out.push_str("</span>");
}

/// Characters a thumbnail's relative path is made of (`thumbs` names them
/// `.tryon-report/thumbs/<hex>.jpg`): safe, unquoted, in a CSS `url()`
/// inside an attribute.
fn url_safe(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'/')
}

/// The result's thumbnail (and an earlier job's kept image) links to the
/// full image, by its file name (the outputs sit beside the page),
/// percent-encoded but for the characters output names are made of.
fn result_link(label: &str, path: &Path) -> Option<String> {
    if label != "result" && label != "earlier" {
        return None;
    }
    let name = path.file_name()?.as_encoded_bytes();
    let mut href = String::with_capacity(name.len());
    for &byte in name {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            href.push(char::from(byte));
        } else {
            let _ = write!(href, "%{byte:02X}");
        }
    }
    Some(href)
}

/// Only `http` and `https` URLs become links (a `javascript:` URL never
/// does).
fn is_web_link(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// `host/…/name` for a URL's link text.
fn short_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            match u.path_segments().and_then(|mut s| s.next_back()) {
                Some(last) if !last.is_empty() => format!("{host}/…/{last}"),
                _ => host.to_string(),
            }
        }
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Earlier, Tally};
    use super::*;

    #[test]
    fn escape_replaces_the_five_and_borrows_plain_text() {
        assert!(matches!(escape("look-1 ok"), Cow::Borrowed(_)));
        assert_eq!(
            escape(r#"<script>alert('x')</script> & "q""#),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(
            escape("\"><img src=x onerror=alert(1)>"),
            "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
        );
    }

    #[test]
    fn result_links_are_file_names_percent_encoded() {
        assert_eq!(
            result_link("result", Path::new("/o/look-1.png")).as_deref(),
            Some("look-1.png")
        );
        assert_eq!(
            result_link("result", Path::new("/o/a b#?.png")).as_deref(),
            Some("a%20b%23%3F.png")
        );
        assert_eq!(result_link("person", Path::new("/o/p.png")), None);
    }

    #[test]
    fn put_shows_control_characters_and_cuts_long_text() {
        let mut out = String::new();
        put(&mut out, "a\u{1b}[2J<b>", 100);
        assert_eq!(out, "a\\u{1b}[2J&lt;b&gt;");
        let mut out = String::new();
        put(&mut out, &"é".repeat(10), 4);
        assert_eq!(out, "éééé… (6 more characters)");
    }

    fn hostile_page() -> Page {
        let evil = "<script>document.title='pwned'</script>\"><img src=x onerror=alert(1)>";
        Page {
            title: evil.to_string(),
            facts: vec![(evil.to_string(), evil.to_string())],
            notes: vec![evil.to_string()],
            tallies: vec![Tally {
                key: "failed".into(),
                name: "failed".into(),
                count: 1,
                help: Some(evil.to_string()),
            }],
            rows: vec![Row {
                id: evil.to_string(),
                status: "failed".into(),
                person: Picture::File(PathBuf::from(format!("/x/{evil}.png"))),
                garments: vec![
                    Picture::Url(format!("https://example.com/{evil}")),
                    Picture::Url("javascript:alert(1)//://".into()),
                ],
                pose: Some(Picture::Absent(evil.to_string())),
                result: Picture::File(PathBuf::from(format!("/out/{evil}"))),
                facts: vec![evil.to_string()],
                prompt: Some(evil.to_string()),
                message: Some(evil.to_string()),
                command: Some((evil.to_string(), evil.to_string())),
                earlier: vec![Earlier {
                    picture: Picture::Absent(evil.to_string()),
                    note: evil.to_string(),
                }],
            }],
        }
    }

    #[test]
    fn hostile_text_never_becomes_markup() {
        let page = hostile_page();
        let mut thumbs = HashMap::new();
        let evil_result = match &page.rows[0].result {
            Picture::File(p) => p.clone(),
            _ => unreachable!(),
        };
        thumbs.insert(
            evil_result,
            Thumb::Made(".tryon-report/thumbs/0.jpg".into()),
        );
        let html = render(&page, &thumbs);
        // Every tag in the document is one this file writes.
        let allowed = [
            "!DOCTYPE",
            "html",
            "head",
            "meta",
            "title",
            "style",
            "body",
            "header",
            "h1",
            "dl",
            "dt",
            "dd",
            "p",
            "input",
            "nav",
            "label",
            "b",
            "main",
            "section",
            "div",
            "span",
            "ul",
            "li",
            "figure",
            "figcaption",
            "img",
            "a",
            "pre",
            "footer",
        ];
        for tag in html.split('<').skip(1) {
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
                .collect();
            assert!(allowed.contains(&name.as_str()), "tag <{name}> in {tag:?}");
        }
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert_eq!(
            html.matches("class=\"im\"").count(),
            1,
            "only the thumbnail"
        );
        assert!(html.contains("style=\"background-image:url(.tryon-report/thumbs/0.jpg)\""));
        assert!(html.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
        assert!(!html.contains("href=\"javascript"), "{html}");
        // Attribute values cannot be closed early: no raw quote after `="`.
        for attr in html.split("=\"").skip(1) {
            let value = attr.split('"').next().unwrap_or_default();
            assert!(!value.contains(['<', '>']), "{value}");
        }
    }

    #[test]
    fn urls_are_links_local_files_thumbnails_and_the_policy_is_stated() {
        let mut page = hostile_page();
        page.title = "t".into();
        page.rows[0].garments = vec![Picture::Url("https://cdn.example.com/a/b/shirt.jpg".into())];
        let html = render(&page, &HashMap::new());
        assert!(html.contains(&format!("content=\"{}\"", escape(CSP))));
        assert!(html.contains(
            "href=\"https://cdn.example.com/a/b/shirt.jpg\" rel=\"noreferrer noopener\""
        ));
        assert!(html.contains(">cdn.example.com/…/shirt.jpg</a>"));
        assert!(
            !html.contains("src=\"https://"),
            "a URL is never an image source"
        );
        assert!(
            html.contains("no thumbnail"),
            "a file with no thumbnail says so"
        );
    }
}
