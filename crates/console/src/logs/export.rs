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

const CSV_HEADER: &str = "seq,id,at,api,method,path,team_id,consumer_id,key_id,key_prefix,model,\
provider_id,provider_key,status,reason,upstream_status,latency_us,upstream_us,ttft_us,tokens_in,\
tokens_out,cost,currency,client_ip,user_agent,error,request_body,response_body\n";

/// A text cell: quoted when it must be, and never read as a formula by a
/// spreadsheet (a leading `=`, `+`, `-` or `@` gets a `'`).
fn csv_text(out: &mut String, v: Option<&str>) {
    let Some(v) = v else { return };
    let formula = v.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula || v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if formula {
            out.push('\'');
        }
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

fn csv_row(l: &CallLog) -> String {
    let mut out = String::with_capacity(512);
    let num = |out: &mut String, v: Option<i64>| {
        if let Some(v) = v {
            out.push_str(&v.to_string());
        }
    };
    num(&mut out, Some(l.seq));
    out.push(',');
    csv_text(&mut out, Some(&l.id));
    out.push(',');
    out.push_str(&l.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
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
        out.push(',');
        csv_text(&mut out, v);
    }
    out.push(',');
    num(&mut out, Some(i64::from(l.status)));
    out.push(',');
    csv_text(&mut out, l.reason.as_deref());
    for v in [
        l.upstream_status.map(i64::from),
        Some(l.latency_us),
        l.upstream_us,
        l.ttft_us,
        Some(l.tokens_in),
        Some(l.tokens_out),
    ] {
        out.push(',');
        num(&mut out, v);
    }
    out.push(',');
    out.push_str(&l.cost);
    for v in [
        l.currency.as_deref(),
        l.client_ip.as_deref(),
        l.user_agent.as_deref(),
        l.error.as_deref(),
        l.request_body.as_deref(),
        l.response_body.as_deref(),
    ] {
        out.push(',');
        csv_text(&mut out, v);
    }
    out.push('\n');
    out
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
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut bytes = 0u64;
    let mut put = |out: &mut std::io::BufWriter<std::fs::File>, text: &[u8]| {
        bytes += text.len() as u64;
        out.write_all(text)
    };
    match format {
        LogExportFormat::Csv => put(&mut out, CSV_HEADER.as_bytes())?,
        LogExportFormat::Json => put(&mut out, b"[")?,
    }
    let mut written = 0u64;
    let mut before = None;
    loop {
        // The reader is held for one page at a time: a sync goes on meanwhile.
        let (items, next) = {
            let mut reader = cache.reader();
            query::page(&mut reader, filter, before, EXPORT_PAGE)?
        };
        for l in items {
            let l = scrubbed(l);
            match format {
                LogExportFormat::Csv => put(&mut out, csv_row(&l).as_bytes())?,
                LogExportFormat::Json => {
                    put(&mut out, if written == 0 { b"\n" } else { b",\n" })?;
                    let json = serde_json::to_vec(&l).map_err(std::io::Error::other)?;
                    put(&mut out, &json)?;
                }
            }
            written += 1;
        }
        progress(written);
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    if let LogExportFormat::Json = format {
        put(&mut out, b"\n]\n")?;
    }
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
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
        let mut out = String::new();
        csv_text(&mut out, Some("plain"));
        out.push('|');
        csv_text(&mut out, Some("a,b \"c\"\nd"));
        out.push('|');
        csv_text(&mut out, Some("=HYPERLINK(\"x\")"));
        out.push('|');
        csv_text(&mut out, None);
        assert_eq!(
            out,
            "plain|\"a,b \"\"c\"\"\nd\"|\"'=HYPERLINK(\"\"x\"\")\"|"
        );
    }
}
