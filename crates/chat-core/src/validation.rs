//! Why input was refused, field by field. The domain's reasons are typed ([`Invalid`]);
//! the driving adapter words them (chat-http in Laravel's sentences). The core holds
//! no sentence a user reads: the only text here is what an adapter said itself about
//! input it parsed ([`Invalid::Said`]).

use crate::model::{MediaPathError, TextBodyError};
use std::collections::BTreeMap;

/// Why one field was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// A text body: empty or too long.
    Text(TextBodyError),
    /// A media path: not a plain key under the thread's prefix.
    MediaPath(MediaPathError),
    /// A number outside `min..=max` (a latitude or longitude).
    OutOfRange { min: i64, max: i64 },
    /// An `Idempotency-Key` that is not 1 to 64 visible ASCII characters.
    IdempotencyKey,
    /// A list longer than `max` items (a care team).
    TooManyItems { max: usize },
    /// A content type that is not one of these.
    ContentTypeNotAllowed { allowed: Vec<String> },
    /// Image uploads are not available: no object storage is configured.
    NoMediaStorage,
    /// The media path names no uploaded image.
    NotUploaded,
    /// The media path's type is not an image's.
    NotAnImagePath,
    /// The bytes are an allowed image, but not of the type the path declares.
    ImageTypeMismatch,
    /// The bytes are not an image of an allowed type.
    ImageTypeNotAllowed,
    /// The image's container could not be read.
    ImageUnreadable,
    /// The image claims more than `limit` pixels.
    TooManyPixels { limit: u64 },
    /// The image does not decode.
    ImageUndecodable,
    /// Placing a hold needs a reason.
    HoldReasonRequired,
    /// No FHIR server is configured (`CHAT_FHIR_BASE_URL`).
    NoRecorder,
    /// Only a closed thread's transcript is recorded.
    ThreadNotClosed,
    /// The driving adapter's own words about input it parsed itself (a missing field,
    /// a wrong JSON type).
    Said(String),
}

impl From<TextBodyError> for Invalid {
    fn from(e: TextBodyError) -> Self {
        Self::Text(e)
    }
}

impl From<MediaPathError> for Invalid {
    fn from(e: MediaPathError) -> Self {
        Self::MediaPath(e)
    }
}

impl From<String> for Invalid {
    fn from(said: String) -> Self {
        Self::Said(said)
    }
}

impl From<&str> for Invalid {
    fn from(said: &str) -> Self {
        Self::Said(said.to_owned())
    }
}

/// Field name → why it was refused, as in Laravel's `{"errors": {"field": [...]}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(BTreeMap<String, Vec<Invalid>>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: &str, why: impl Into<Invalid>) -> Self {
        let mut e = Self::new();
        e.add(field, why);
        e
    }

    pub fn add(&mut self, field: &str, why: impl Into<Invalid>) {
        self.0.entry(field.to_owned()).or_default().push(why.into());
    }

    /// Adds every refusal of `other`.
    pub fn merge(&mut self, other: Self) {
        for (field, reasons) in other.0 {
            self.0.entry(field).or_default().extend(reasons);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fields(&self) -> &BTreeMap<String, Vec<Invalid>> {
        &self.0
    }

    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}
