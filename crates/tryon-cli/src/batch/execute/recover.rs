//! An expired job's output, fetched from the URL the account's history
//! names for it (never with the key): no new charge.

use std::path::Path;

use super::{Outcome, Run};
use crate::batch::status::EXPIRED;
use crate::manifest::Row;
use crate::term;

impl Run {
    /// Fetch an expired job's output from the URL its history record
    /// names, and save it at `path`. Not journaled when it fails, so a
    /// rerun tries again.
    pub(super) async fn recover(
        &self,
        row: &Row,
        fingerprint: &str,
        request_id: String,
        url: String,
        path: &Path,
    ) -> Outcome {
        self.say(&format!(
            "row {}: fetching the output of its expired job {} from the account's history",
            term::inline(&row.id),
            term::inline(&request_id)
        ));
        let entry = tryon_client::HistoryEntry::builder()
            .request_id(request_id.clone())
            .model_status(Some("COMPLETED".to_string()))
            .generation_url(Some(url))
            .try_into();
        let Ok(entry) = entry else {
            return Outcome::Failed {
                request_id: Some(request_id),
                reason: EXPIRED.to_string(),
            };
        };
        match self.client.history_output(&entry) {
            Ok(Some(output)) => {
                self.save(row, fingerprint, &request_id, &output, path)
                    .await
            }
            Ok(None) => Outcome::Failed {
                request_id: Some(request_id),
                reason: EXPIRED.to_string(),
            },
            Err(e) => Outcome::Failed {
                request_id: Some(request_id),
                reason: format!("{EXPIRED}; its history record's output URL is unusable: {e}"),
            },
        }
    }
}
