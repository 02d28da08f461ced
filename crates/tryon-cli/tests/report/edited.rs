//! An edited row on the page: what the terminal summary says of it (changed
//! since its paid job, not resubmitted; then, resubmitted, its earlier image
//! kept under its previous name), said in the same words on its row, by the
//! run's page and by `tryon report` from the journal alone.

use serde_json::Value;
use tryon_mock::MockServer;

use super::common::{self, batch, batch_dir, output, text};
use super::{browser, rows_by_id, tryon_report};

/// The alt texts of a row's thumbnails that decoded.
fn decoded(row: &Value) -> Vec<String> {
    row["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter(|i| i["width"].as_u64().is_some_and(|w| w > 0))
        .map(|i| i["alt"].as_str().expect("an alt").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_row_and_its_kept_image_show_as_the_summary_says_them() {
    let Some(browser) = browser::find("report: an edited row in chromium") else {
        return;
    };
    let server = MockServer::start().await;
    let (_dir, manifest, out_dir) = batch_dir(2, None);
    let first = output(batch(&server, &manifest, &out_dir, &[])).await;
    assert!(first.status.success(), "{}", text(&first.stdout));
    let paid = common::journal_ids(&out_dir)["look-0"][0].clone();
    let edited = std::fs::read_to_string(&manifest)
        .expect("the manifest")
        .replacen(",1000\n", ",7\n", 1);
    std::fs::write(&manifest, edited).expect("manifest edited");

    // Not resubmitted: the page files it as changed, with the summary's
    // reason, its line, and the flag that sends it.
    let rerun = output(batch(&server, &manifest, &out_dir, &[])).await;
    let stdout = text(&rerun.stdout);
    assert_eq!(rerun.status.code(), Some(2), "{stdout}");
    let page = out_dir.join("report.html");
    let seen = browser::inspect(&browser, &page);
    let rows = rows_by_id(&seen);
    let row = &rows["look-0"];
    assert_eq!(row["status"], "changed", "{row}");
    let message = row["message"].as_str().expect("the reason");
    assert!(message.contains("seed: 1000 -> 7"), "{message}");
    assert!(
        stdout.contains(&format!("changed rows:\n  look-0 ({paid}): {message}\n")),
        "the summary's words: {stdout}\npage: {message}"
    );
    let help =
        "edited since a job that has a result: not resubmitted; --resubmit-changed sends again";
    assert!(
        stdout.contains(&format!("\n  changed    1 ({help})")),
        "{stdout}"
    );
    assert!(
        row["command"]
            .as_str()
            .expect("a command")
            .ends_with(" --resubmit-changed"),
        "{row}"
    );
    assert_eq!(
        decoded(row),
        ["result"],
        "the earlier image, still at its path"
    );
    assert_eq!(seen["filters"]["f-changed"], 1);
    assert_eq!(rows["look-1"]["status"], "completed");
    assert_eq!(server.billed_submits(), 2, "nothing billed for the edit");

    // Resubmitted: the earlier image is kept, and its row says where, as
    // the summary does.
    let asked = output(batch(&server, &manifest, &out_dir, &["--resubmit-changed"])).await;
    let stdout = text(&asked.stdout);
    assert!(asked.status.success(), "{stdout}");
    assert_eq!(server.billed_submits(), 3);
    let kept_at = out_dir.join(format!("look-0~previous-{}.png", &paid[..8]));
    assert!(kept_at.is_file(), "{stdout}");
    let note = format!("earlier job {paid}: kept as {}", kept_at.display());
    assert!(
        stdout.contains(&format!(
            "earlier images:\n  look-0 ({paid}): kept as {}",
            kept_at.display()
        )),
        "{stdout}"
    );
    let seen = browser::inspect(&browser, &page);
    let rows = rows_by_id(&seen);
    let row = &rows["look-0"];
    assert_eq!(row["status"], "completed", "{row}");
    assert_eq!(row["kept"], Value::from(vec![note.clone()]), "{row}");
    assert_eq!(decoded(row), ["result", "earlier"]);
    assert!(
        seen["text"]
            .as_str()
            .expect("the page's text")
            .contains("earlier images\n1 (images of edited rows' earlier jobs"),
        "{}",
        seen["text"]
    );

    // Again from the journal and the files: the same row, the same note.
    drop(server);
    let again = tryon_report(&[out_dir.as_os_str()]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let seen = browser::inspect(&browser, &page);
    let row = &rows_by_id(&seen)["look-0"];
    assert_eq!(row["status"], "completed", "{row}");
    assert_eq!(row["kept"], Value::from(vec![note]), "{row}");
    assert_eq!(decoded(row), ["result", "earlier"]);
    assert_eq!(browser.fetched(), Vec::<String>::new());
}
