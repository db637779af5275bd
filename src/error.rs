//! The library's error type: what went wrong, and where it helps, what to do.

use std::fmt::Display;
use std::io;

use crate::model::Invalid;
use crate::os::git::GitError;
use crate::os::tmux::TmuxError;
use crate::store::StoreError;
use crate::workspace::WorkspaceError;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mistake the user can fix; `hint` says how.
    #[error("{message}")]
    User {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Tmux(#[from] TmuxError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl Error {
    pub fn user(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::User {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn io(context: impl Display, source: io::Error) -> Error {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::User { hint, .. } => hint.clone(),
            Error::Tmux(e) => e.hint(),
            Error::Store(e) => e.hint(),
            Error::Git(e) => e.hint(),
            Error::Io { .. } => None,
        }
    }
}

/// A broken rule of the domain is the user's to fix.
impl From<Invalid> for Error {
    fn from(e: Invalid) -> Error {
        Error::User {
            message: e.message,
            hint: Some(e.hint),
        }
    }
}

impl From<WorkspaceError> for Error {
    fn from(e: WorkspaceError) -> Error {
        match e {
            WorkspaceError::Invalid(e) => e.into(),
            WorkspaceError::Io { context, source } => Error::Io { context, source },
        }
    }
}

/// The known name closest to `name`, if one is close enough to be what
/// was meant (a typo, another case).
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    known
        .into_iter()
        .map(|k| {
            let d = strsim::levenshtein(&lower, &k.to_lowercase());
            (d, k)
        })
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggestions_are_close_names_only() {
        let known = ["CodeAgency", "QAAgency", "coordinator", "python-agent"];
        assert_eq!(did_you_mean("CodeAgncy", known), Some("CodeAgency"));
        assert_eq!(did_you_mean("codeagency", known), Some("CodeAgency"));
        assert_eq!(did_you_mean("pyhton-agent", known), Some("python-agent"));
        assert_eq!(did_you_mean("Docs", known), None);
        assert_eq!(did_you_mean("x", known), None);
    }
}
