//! What a message is. Its own module because both the model and the encryption
//! contract use it: the kind is bound into each message's associated data.

use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum MessageKind {
    Text,
    Image,
    Location,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Exactly `text`, `image` or `location`.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// A stable one-byte tag, bound into each message's associated data.
    pub fn tag(self) -> u8 {
        match self {
            Self::Text => 1,
            Self::Image => 2,
            Self::Location => 3,
        }
    }
}
