use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use chat_core::{ChatError, Invalid, MediaPathError, TextBodyError, ValidationErrors};
use std::collections::BTreeMap;

/// An error answer: `{"message", "code"}`, plus `errors` for validation (SPEC §3.7).
/// The cause of a 5xx is logged here and never shown.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthenticated")]
    Unauthenticated,
    #[error("forbidden")]
    Forbidden,
    #[error("thread closed")]
    ThreadClosed,
    /// The thread is under legal hold (SPEC §10): `409 on_hold`.
    #[error("on hold")]
    OnHold,
    #[error("not found")]
    NotFound,
    #[error("payload too large")]
    PayloadTooLarge,
    /// A JSON route's body not sent as `application/json` (SPEC §3.7).
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("validation failed")]
    Invalid(ValidationErrors),
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("feature disabled")]
    Disabled,
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(ValidationErrors::single(
            field,
            Invalid::Said(message.into()),
        ))
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::ThreadClosed => "thread_closed",
            Self::OnHold => "on_hold",
            Self::NotFound => "not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Invalid(_) => "validation_failed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Disabled => "feature_disabled",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Unauthenticated => "Unauthenticated.".into(),
            Self::Forbidden => "This action is unauthorized.".into(),
            Self::ThreadClosed => "The chat thread is closed.".into(),
            Self::OnHold => {
                "The chat thread is on legal hold: nothing of it may be removed.".into()
            }
            Self::NotFound => "Not found.".into(),
            Self::PayloadTooLarge => "The request body is too large.".into(),
            Self::UnsupportedMediaType => {
                "The request body must be sent as application/json.".into()
            }
            Self::Invalid(errors) => summary(&worded(errors)),
            Self::RateLimited { .. } => "Too many requests. Try again later.".into(),
            Self::Disabled => "Chat is disabled.".into(),
            Self::Unavailable(_) => {
                "The service is temporarily unavailable. Nothing was changed; try again.".into()
            }
            Self::Internal(_) => "Internal server error.".into(),
        }
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        crate::metric_names::count_error(&e);
        match e {
            ChatError::Disabled => Self::Disabled,
            ChatError::NotFound => Self::NotFound,
            ChatError::Forbidden => Self::Forbidden,
            ChatError::ThreadClosed => Self::ThreadClosed,
            ChatError::OnHold => Self::OnHold,
            ChatError::Invalid(errors) => Self::Invalid(errors),
            // A statement the backend refuses as wrong is a bug here, not an outage.
            ChatError::Unavailable(cause @ chat_core::StoreError::Rejected(_)) => {
                Self::Internal(cause.to_string())
            }
            ChatError::Unavailable(cause) => Self::Unavailable(cause.to_string()),
            // A thread key wrapped under a master key this instance lacks is its
            // configuration, not the data: 503, the missing version in the log.
            ChatError::Crypto(chat_core::crypto::CryptoError::UnknownKeyVersion(version)) => {
                Self::Unavailable(format!(
                    "master key version {version:?} is not in this instance's ring (CHAT_MASTER_KEYS)"
                ))
            }
            // The key service is down, throttles, or its key is disabled: 503, the
            // cause in the log (it never carries key material).
            ChatError::Crypto(cause @ chat_core::crypto::CryptoError::KeyServiceUnavailable(_)) => {
                Self::Unavailable(cause.to_string())
            }
            ChatError::Crypto(cause) => Self::Internal(cause.to_string()),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        Self::Invalid(e)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::ThreadClosed => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::OnHold => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Disabled => StatusCode::NOT_IMPLEMENTED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            // The causes carry no content: store and crypto errors name what failed.
            Self::Unavailable(cause) => tracing::error!(%cause, "a backing store failed"),
            Self::Internal(cause) => tracing::error!(%cause, "internal error"),
            _ => {}
        }
        // A validation error's summary is its first sentence: worded once for both.
        let (message, errors) = match self {
            Self::Invalid(errors) => {
                let worded = worded(errors);
                (summary(&worded), worded)
            }
            _ => (self.message(), BTreeMap::new()),
        };
        let body = crate::wire::ErrorBody {
            message,
            code: self.code().to_owned(),
            errors,
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unauthenticated) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if matches!(self, Self::Unavailable(_)) {
            response.insert_header(("Retry-After", "1"));
        }
        if let Self::RateLimited { retry_after_secs } = self {
            response.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        response.json(body)
    }
}

/// Each field's refusals in Laravel's sentences, as `errors` answers them.
fn worded(errors: &ValidationErrors) -> BTreeMap<String, Vec<String>> {
    errors
        .fields()
        .iter()
        .map(|(field, reasons)| {
            let sentences = reasons.iter().map(|why| sentence(field, why)).collect();
            (field.clone(), sentences)
        })
        .collect()
}

/// Laravel's summary: the first message, plus "(and N more errors)".
fn summary(worded: &BTreeMap<String, Vec<String>>) -> String {
    let all: Vec<&String> = worded.values().flatten().collect();
    match all.split_first() {
        None => "The given data was invalid.".to_owned(),
        Some((first, [])) => (*first).clone(),
        Some((first, rest)) => {
            let n = rest.len();
            let noun = if n == 1 { "error" } else { "errors" };
            format!("{first} (and {n} more {noun})")
        }
    }
}

/// One refusal of `field`, worded as Laravel's validator would (`staff_ids` reads
/// "staff ids").
fn sentence(field: &str, why: &Invalid) -> String {
    let name = field.replace('_', " ");
    match why {
        Invalid::Text(TextBodyError::Empty) => format!("The {name} field is required."),
        Invalid::Text(TextBodyError::TooLong { max_chars }) => {
            format!("The {name} field must not be greater than {max_chars} characters.")
        }
        Invalid::MediaPath(error) => media_path_sentence(error),
        Invalid::OutOfRange { min, max } => {
            format!("The {name} field must be between {min} and {max}.")
        }
        Invalid::IdempotencyKey => {
            "The Idempotency-Key header must be 1 to 64 visible ASCII characters.".into()
        }
        Invalid::TooManyItems { max } => {
            format!("The {name} field must not have more than {max} items.")
        }
        Invalid::ContentTypeNotAllowed { allowed } => {
            format!("The content type must be one of: {}.", allowed.join(", "))
        }
        Invalid::NoMediaStorage => {
            "Image uploads are not available: no media storage is configured.".into()
        }
        Invalid::NotUploaded => "The media path does not name an uploaded file.".into(),
        Invalid::NotAnImagePath => "The media path is not an image's.".into(),
        Invalid::ImageTypeMismatch => {
            "The uploaded file is not an allowed image type, or not the declared one.".into()
        }
        Invalid::ImageTypeNotAllowed => "The uploaded file is not an allowed image type.".into(),
        Invalid::ImageUnreadable => "The uploaded image could not be read.".into(),
        Invalid::TooManyPixels { limit } => format!("The image has more than {limit} pixels."),
        Invalid::ImageUndecodable => "The uploaded image does not decode.".into(),
        Invalid::HoldReasonRequired => "The reason field is required to place a hold.".into(),
        Invalid::NoRecorder => "No FHIR server is configured (CHAT_FHIR_BASE_URL).".into(),
        Invalid::ThreadNotClosed => "Only a closed thread's transcript is recorded.".into(),
        Invalid::Said(sentence) => sentence.clone(),
    }
}

fn media_path_sentence(error: &MediaPathError) -> String {
    let why = match error {
        MediaPathError::Empty => "is required".to_owned(),
        MediaPathError::TooLong => "is too long".to_owned(),
        MediaPathError::LeadingSlash => "must not start with a slash".to_owned(),
        MediaPathError::Traversal => "must not contain '..', '//', '\\' or '%'".to_owned(),
        MediaPathError::DotSegment => "must not contain '.' segments".to_owned(),
        MediaPathError::Invisible => "must not contain control or invisible characters".to_owned(),
        MediaPathError::OutsideThread { prefix } => format!("must name a file under {prefix}"),
        MediaPathError::NotAnUpload { prefix } => {
            format!("must name a file uploaded under {prefix}")
        }
    };
    format!("The media path {why}.")
}
