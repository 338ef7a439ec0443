//! The journal: every call of the load as it was answered, one JSON line
//! each.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::load::Step;

/// One call as the load balancer answered it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Milliseconds since the Unix epoch when it was sent and answered (or
    /// failed), comparable with `date +%s%3N` in the script.
    pub(crate) sent: u64,
    pub(crate) done: u64,
    pub(crate) step: String,
    pub(crate) path: String,
    /// 0 when no HTTP answer came (connection refused or reset).
    pub(crate) status: u16,
    /// The error body's code, for an answer that is not 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<String>,
    /// The flow a 2xx answer described, and its state there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) flow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<String>,
}

impl Entry {
    pub(super) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// How a failure is counted: its error code, else its status, else
    /// `no_answer`.
    pub(super) fn failure(&self) -> String {
        match (&self.code, self.status) {
            (Some(code), status) => format!("{status} {code}"),
            (None, 0) => "no_answer".to_owned(),
            (None, status) => format!("{status} without a code"),
        }
    }

    /// The path's segment after `/flows/` or `/runs/`.
    pub(super) fn id_after(&self, marker: &str) -> Option<&str> {
        let (_, rest) = self.path.split_once(marker)?;
        rest.split('/').next().filter(|id| !id.is_empty())
    }
}

/// The load generator's record of every call, one JSON line each.
pub(crate) struct Journal(Mutex<std::io::BufWriter<std::fs::File>>);

impl Journal {
    pub(crate) fn create(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("while creating {}", path.display()))?;
        Ok(Self(Mutex::new(std::io::BufWriter::new(file))))
    }

    /// Wall-clock milliseconds: the script marks a fault's start and end on
    /// the same clock.
    pub(crate) fn now() -> u64 {
        #[allow(clippy::disallowed_methods)] // Wall time, to meet the script's marks.
        let now = std::time::SystemTime::now();
        now.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Writes one call: `answer` is its status and body, `None` when none came.
    pub(crate) fn call(
        &self,
        step: Step,
        path: &str,
        sent: u64,
        answer: Option<(reqwest::StatusCode, &[u8])>,
    ) {
        let mut entry = Entry {
            sent,
            done: Self::now(),
            step: step.to_owned(),
            path: path.to_owned(),
            status: 0,
            code: None,
            flow: None,
            state: None,
        };
        if let Some((status, body)) = answer {
            entry.status = status.as_u16();
            let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            if status.is_success() {
                if let (Some(id), Some(state)) = (body["id"].as_str(), body["state"].as_str()) {
                    entry.flow = Some(id.to_owned());
                    entry.state = Some(state.to_owned());
                }
            } else {
                entry.code = body["error"]["code"].as_str().map(str::to_owned);
            }
        }
        if let (Ok(line), Ok(mut out)) = (serde_json::to_string(&entry), self.0.lock()) {
            let _ = writeln!(out, "{line}");
        }
    }

    pub(crate) fn flush(&self) -> anyhow::Result<()> {
        if let Ok(mut out) = self.0.lock() {
            out.flush()?;
        }
        Ok(())
    }
}

pub(crate) fn read_journal(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("while opening {}", path.display()))?;
    let mut entries = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            entries.push(serde_json::from_str(&line).context("a journal line")?);
        }
    }
    Ok(entries)
}
