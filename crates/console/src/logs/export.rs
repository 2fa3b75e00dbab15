//! Export of the explorer's current filter to a CSV or JSON file, read from
//! the cache page by page (newest first, like the explorer) and streamed to
//! a temporary file renamed into place at the end. Records hold no secrets
//! by design (the gateway masks keys and redacts captured bodies); every
//! text is scrubbed again on the way out, so that nothing shaped like an
//! admin token, a consumer key or a bearer credential reaches a file.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use tollgate_api::CallLog;

use super::LogExportFormat;
use super::cache::LogCache;
use super::query::{self, Resolved};

/// Records read from the cache at a time.
const EXPORT_PAGE: u32 = 2_000;

/// `text` with every credential found (admin tokens, consumer and provider
/// keys, bearer credentials, secret-named JSON fields) replaced: the
/// gateway's own redaction, shared.
pub use tollgate_api::redact::redact_credentials as scrub;

/// A record with its free texts scrubbed.
pub fn scrubbed(mut l: CallLog) -> CallLog {
    let clean = |v: &mut Option<String>| {
        if let Some(text) = v
            && let Cow::Owned(s) = scrub(text)
        {
            *text = s;
        }
    };
    clean(&mut l.error);
    clean(&mut l.request_body);
    clean(&mut l.response_body);
    clean(&mut l.user_agent);
    if let Cow::Owned(s) = scrub(&l.path) {
        l.path = s;
    }
    l
}

const CSV_HEADER: [&str; 28] = [
    "seq",
    "id",
    "at",
    "api",
    "method",
    "path",
    "team_id",
    "consumer_id",
    "key_id",
    "key_prefix",
    "model",
    "provider_id",
    "provider_key",
    "status",
    "reason",
    "upstream_status",
    "latency_us",
    "upstream_us",
    "ttft_us",
    "tokens_in",
    "tokens_out",
    "cost",
    "currency",
    "client_ip",
    "user_agent",
    "error",
    "request_body",
    "response_body",
];

/// A text cell that a spreadsheet would read as a formula (a leading `=`,
/// `+`, `-`, `@`, tab or carriage return) gets a leading `'`; the `csv`
/// writer quotes what must be quoted.
fn cell(v: Option<&str>) -> Cow<'_, str> {
    match v {
        None => Cow::Borrowed(""),
        Some(v) if v.starts_with(['=', '+', '-', '@', '\t', '\r']) => Cow::Owned(format!("'{v}")),
        Some(v) => Cow::Borrowed(v),
    }
}

/// A record's cells, in [`CSV_HEADER`]'s order.
fn csv_row(l: &CallLog) -> Vec<Cow<'_, str>> {
    let num = |v: Option<i64>| Cow::Owned(v.map(|v| v.to_string()).unwrap_or_default());
    let mut row = Vec::with_capacity(CSV_HEADER.len());
    row.push(num(Some(l.seq)));
    row.push(cell(Some(&l.id)));
    row.push(Cow::Owned(
        l.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    ));
    for v in [
        Some(l.api.as_str()),
        Some(l.method.as_str()),
        Some(l.path.as_str()),
        l.team_id.as_deref(),
        l.consumer_id.as_deref(),
        l.key_id.as_deref(),
        l.key_prefix.as_deref(),
        l.model.as_deref(),
        l.provider_id.as_deref(),
        l.provider_key.as_deref(),
    ] {
        row.push(cell(v));
    }
    row.push(num(Some(i64::from(l.status))));
    row.push(cell(l.reason.as_deref()));
    for v in [
        l.upstream_status.map(i64::from),
        Some(l.latency_us),
        l.upstream_us,
        l.ttft_us,
        Some(l.tokens_in),
        Some(l.tokens_out),
    ] {
        row.push(num(v));
    }
    row.push(Cow::Borrowed(&l.cost));
    for v in [
        l.currency.as_deref(),
        l.client_ip.as_deref(),
        l.user_agent.as_deref(),
        l.error.as_deref(),
        l.request_body.as_deref(),
        l.response_body.as_deref(),
    ] {
        row.push(cell(v));
    }
    row
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".part");
    path.with_file_name(name)
}

/// Writes every record `filter` matches to `path`; `progress` hears the
/// count written after each page. Answers (records, bytes).
pub(crate) fn write(
    cache: &LogCache,
    filter: &Resolved,
    format: LogExportFormat,
    path: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, u64), ExportError> {
    let part = part_path(path);
    let result = write_to(cache, filter, format, &part, progress);
    match result {
        Ok(counts) => {
            std::fs::rename(&part, path)?;
            Ok(counts)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

/// A CSV writer's error: the file's, or one the crate found.
fn csv_error(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

fn write_to(
    cache: &LogCache,
    filter: &Resolved,
    format: LogExportFormat,
    part: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, u64), ExportError> {
    let file = std::fs::File::create(part)?;
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut written = 0u64;
    let mut before = None;
    // One writer per format: the csv crate's (quoting, RFC 4180) or the file's.
    let (mut csv, mut json) = match format {
        LogExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_HEADER).map_err(csv_error)?;
            (Some(w), None)
        }
        LogExportFormat::Json => {
            let mut out = out;
            out.write_all(b"[")?;
            (None, Some(out))
        }
    };
    loop {
        // The reader is held for one page at a time: a sync goes on meanwhile.
        let (items, next) = {
            let mut reader = cache.reader();
            query::page(&mut reader, filter, before, EXPORT_PAGE)?
        };
        for l in items {
            let l = scrubbed(l);
            if let Some(w) = csv.as_mut() {
                w.write_record(csv_row(&l).iter().map(|c| c.as_bytes()))
                    .map_err(csv_error)?;
            }
            if let Some(out) = json.as_mut() {
                out.write_all(if written == 0 { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut *out, &l).map_err(std::io::Error::other)?;
            }
            written += 1;
        }
        progress(written);
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    let mut out = match (csv, json) {
        (Some(w), _) => w.into_inner().map_err(|e| e.into_error())?,
        (None, Some(mut out)) => {
            out.write_all(b"\n]\n")?;
            out
        }
        (None, None) => unreachable!("one writer per format"),
    };
    out.flush()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    Ok((written, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_and_the_rest_kept() {
        let admin = "tga_01jabcdefghjkmnpqrstvwxyz0_s3cr3tS3cr3tS3cr3t";
        let key = "tg_ab12cd34ef_0123456789abcdef";
        let text = format!(
            "token {admin}, key={key}; Authorization: Bearer abc.def~ghi/jkl= ok tg_ab12cd34 \
             sk-proj-aaaaaaaaaaaaaaaaaaaa"
        );
        let clean = scrub(&text);
        assert_eq!(
            clean,
            "token [REDACTED], key=[REDACTED]; Authorization: Bearer [REDACTED] ok tg_ab12cd34 \
             [REDACTED]"
        );
        // Nothing to do: borrowed, unchanged.
        assert!(matches!(
            scrub("model sim-small answered 200"),
            Cow::Borrowed(_)
        ));
        assert_eq!(scrub("Bearer short"), "Bearer short");
    }

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(
            [
                cell(Some("plain")),
                cell(Some("a,b \"c\"\nd")),
                cell(Some("=HYPERLINK(\"x\")")),
                cell(Some("-1+1")),
                cell(None),
            ]
            .iter()
            .map(|c| c.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(w.into_inner().unwrap()).unwrap(),
            "plain,\"a,b \"\"c\"\"\nd\",\"'=HYPERLINK(\"\"x\"\")\",'-1+1,\n"
        );
    }
}
