//! Identifier newtypes. Each wraps a positive 64-bit integer so that a thread id can
//! never be passed where a user id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// Wraps a raw id. Ids are positive; zero and negatives are refused.
            pub fn new(raw: i64) -> Option<Self> {
                (raw > 0).then_some(Self(raw))
            }

            /// The raw integer, for adapters that store it.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse::<i64>().ok().and_then(Self::new).ok_or(InvalidId)
            }
        }
    };
}

/// A string that is not a positive 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a positive integer id")]
pub struct InvalidId;

id_type!(
    /// A user, as named by the `sub` claim of the bearer token.
    UserId
);
id_type!(
    /// A service request of the host system.
    RequestId
);
id_type!(
    /// A chat thread; one per service request.
    ThreadId
);
id_type!(
    /// A message; increasing within a thread.
    MessageId
);
id_type!(
    /// A background job.
    JobId
);
