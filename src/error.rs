//! The library's error type: what went wrong, and where it helps, what to do.

use std::fmt::Display;
use std::io;

use crate::git::GitError;
use crate::store::StoreError;
use crate::tmux::TmuxError;

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
