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

/// Message ids drawn in the instance, with no round trip to the store: microseconds
/// since the epoch, strictly increasing within the process (`max(last + 1, now)`).
/// They stay below 2^53 until the year 2255, so JavaScript clients read them exactly.
///
/// A store that draws its ids here refuses an append whose id is at or below the
/// thread's newest ([`Appended::Behind`](crate::ports::Appended::Behind)) and passes that
/// newest id to [`raise_floor`](Self::raise_floor): an instance whose clock lags
/// another's pays one retry, never an out-of-order id.
#[derive(Debug, Default)]
pub struct ClockIds {
    last: std::sync::atomic::AtomicI64,
}

impl ClockIds {
    /// The next id, given the time now. `Corrupt` only past the end of `i64`.
    pub fn next(&self, now: crate::Timestamp) -> Result<MessageId, crate::StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = now.timestamp_micros();
        let advance = |last: i64| last.checked_add(1).map(|next| next.max(now));
        let overflow = || crate::StoreError::Corrupt("message id overflow".into());
        let previous = self
            .last
            .fetch_update(Relaxed, Relaxed, advance)
            .map_err(|_| overflow())?;
        advance(previous)
            .and_then(MessageId::new)
            .ok_or_else(overflow)
    }

    /// Ids drawn from now on are above `newest`.
    pub fn raise_floor(&self, newest: MessageId) {
        self.last
            .fetch_max(newest.get(), std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(micros: i64) -> crate::Timestamp {
        chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default()
    }

    #[test]
    fn clock_ids_follow_the_clock_and_never_repeat_or_go_back() {
        let ids = ClockIds::default();
        let id = |t| ids.next(at(t)).ok().map(MessageId::get);
        assert_eq!(id(1_000), Some(1_000));
        assert_eq!(id(1_000), Some(1_001), "same microsecond: the next one");
        assert_eq!(
            id(900),
            Some(1_002),
            "the clock went back: still increasing"
        );
        assert_eq!(id(5_000), Some(5_000), "the clock again");
        ids.raise_floor(MessageId::new(9_000).unwrap_or(MessageId(1)));
        assert_eq!(id(5_001), Some(9_001), "above a newer instance's id");
        ids.raise_floor(MessageId::new(10).unwrap_or(MessageId(1)));
        assert_eq!(id(5_002), Some(9_002), "a lower floor changes nothing");
    }
}
