//! The harness's one error type.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum JepsenError {
    /// A file or folder could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
    /// A history line is not a valid JSON operation record.
    #[error("{}: line {line}, column {column}: not a valid operation record: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        /// serde_json's message without its own position (it only sees the one line).
        message: String,
    },
    /// A history line parses but breaks a rule of the format (a send without a key, a
    /// process with two operations open at once…).
    #[error("{}: line {line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// An operation could not be encoded (it cannot happen with the types in this crate,
    /// but serde's API says it may).
    #[error("encoding an operation record: {0}")]
    Encode(serde_json::Error),
}

impl JepsenError {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause,
        }
    }

    /// A line that serde_json refused.
    pub(crate) fn parse(path: &std::path::Path, line: usize, e: &serde_json::Error) -> Self {
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
        Self::Parse {
            path: path.to_owned(),
            line,
            column: e.column(),
            message,
        }
    }
}

pub type Result<T, E = JepsenError> = std::result::Result<T, E>;
