//! The client's public operations: submit, run, re-attach, the v1 run and
//! many jobs at once.

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use tracing::Instrument as _;
use tryon_api::types;

use crate::classify::{CallError, salvage_request_id};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::order::tail_longest_first;
use crate::output::Output;
use crate::request::TryOnRequest;
use crate::session::Client;

impl Client {
    /// Submits the job, waits for it (up to the client's wait timeout) and
    /// reads its result.
    pub async fn run(&self, request: &TryOnRequest) -> Result<Output> {
        let job = self.submit(request).await?;
        job.wait().await
    }

    /// Submits the job and returns at once with its handle.
    ///
    /// Every image input is read and checked first, exactly as
    /// [`TryOnRequest::preflight`] does, so a bad input is refused before
    /// anything is sent. Retried only when the server provably did not
    /// take it (connect error, `429`, `503`); an unknown outcome is
    /// [`Error::AmbiguousSubmit`] and is never retried.
    pub async fn submit(&self, request: &TryOnRequest) -> Result<Job> {
        let span = tracing::info_span!(
            "tryon.submit",
            garments = request.garment_count(),
            turbo = request.turbo(),
            request_id = tracing::field::Empty,
        );
        async {
            let body = self.wire_body(request).await?;
            let request_id = match self.send_submit(&body).await {
                Ok(answer) => answer.request_id,
                Err(CallError::Payload(raw)) => salvage_request_id(&raw)?,
                Err(CallError::Error(e)) => return Err(e),
            };
            if request_id.trim().is_empty() {
                return Err(Error::InvalidResponse {
                    request_id: None,
                    problem: "submit answered 200 with an empty request_id (the job may be billed)"
                        .into(),
                });
            }
            tracing::Span::current().record("request_id", request_id.as_str());
            tracing::info!(request_id = %request_id, "submitted");
            Ok(Job::new(
                self.clone(),
                request_id,
                Some(request.expected_duration()),
                true,
            ))
        }
        .instrument(span)
        .await
    }

    /// Re-attaches to a job by id (after a restart, or from another
    /// process). Nothing is sent until the handle is used. Its expected
    /// time is unknown, so polling starts quick and slows down; set it with
    /// [`Job::with_expected_duration`] when known.
    pub fn job(&self, request_id: impl Into<String>) -> Job {
        Job::new(self.clone(), request_id.into(), None, false)
    }

    /// Runs the job on the synchronous v1 endpoint and returns the image
    /// bytes. Same input checks and retry rules as
    /// [`submit`](Self::submit); the answer goes through the same reader as
    /// [`Output::download`] (size cap, content type, magic bytes, whole
    /// image). The v1 answer carries no `request_id`, so an image lost after
    /// the `200` (billed) is [`Error::AmbiguousSubmit`], never retried.
    pub async fn run_sync(&self, request: &TryOnRequest) -> Result<Bytes> {
        let span = tracing::info_span!("tryon.run_sync", garments = request.garment_count());
        async {
            let body = self.wire_body(request).await?;
            self.send_run_sync(&body).await
        }
        .instrument(span)
        .await
    }

    /// Runs many jobs with at most `concurrency` in flight, yielding each
    /// `(index, result)` as it finishes (not in input order; `index` is the
    /// request's place in the input).
    ///
    /// Jobs start in input order, except the last `concurrency` of an input
    /// whose length is known (an exact size hint, as a `Vec` or a range
    /// has): those start longest expected duration first, so the run does
    /// not end waiting on a long job started last.
    ///
    /// All jobs share the client's rate limiter: a `429` seen by any of
    /// them holds the calls of its kind (submits, reads) off for the
    /// server's `Retry-After` and slows them until calls succeed again.
    /// `concurrency` 0 is taken as 1.
    pub fn run_many<I>(
        &self,
        requests: I,
        concurrency: usize,
    ) -> impl Stream<Item = (usize, Result<Output>)> + Send + 'static
    where
        I: IntoIterator<Item = TryOnRequest>,
        I::IntoIter: Send + 'static,
    {
        let client = self.clone();
        let concurrency = concurrency.max(1);
        futures::stream::iter(tail_longest_first(
            requests,
            concurrency,
            TryOnRequest::expected_duration,
        ))
        .map(move |(i, req)| {
            let client = client.clone();
            async move { (i, client.run(&req).await) }
        })
        .buffer_unordered(concurrency)
    }

    /// Builds the wire body, uploading local images when configured.
    async fn wire_body(&self, request: &TryOnRequest) -> Result<types::TryOnInput> {
        if self.uploads_local_images() {
            request
                .to_wire(Some(|data: Vec<String>| self.upload_assets(data)))
                .await
        } else {
            request
                .to_wire(None::<fn(Vec<String>) -> std::future::Ready<Result<Vec<String>>>>)
                .await
        }
    }
}
