//! The domain model: users, service requests, threads and messages.

use crate::crypto::SealedContent;
use crate::ids::{MessageId, RequestId, ThreadId, UserId};
pub use crate::kind::MessageKind;
use serde::{Deserialize, Serialize};

/// Every instant in the domain is UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The caller, as established by the bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub role: String,
}

impl User {
    pub fn new(id: UserId, role: impl Into<String>) -> Self {
        Self {
            id,
            role: role.into(),
        }
    }

    /// `role == "admin"` is the super-admin of the seed policy.
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
}

/// A care request owned by one client, registered by the host system, with its care
/// team: the staff assigned to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRequest {
    pub id: RequestId,
    pub client_id: UserId,
    /// Distinct, ascending, at most [`ServiceRequest::MAX_STAFF`].
    pub staff_ids: Vec<UserId>,
    /// The thread's transcript goes to the medical record at close (SPEC §10).
    pub record: bool,
}

impl ServiceRequest {
    /// The largest care team a request may have (SPEC §3.1).
    pub const MAX_STAFF: usize = 50;

    /// A request with its team in canonical form: duplicates dropped, ascending.
    pub fn new(id: RequestId, client_id: UserId, mut staff_ids: Vec<UserId>) -> Self {
        staff_ids.sort_unstable();
        staff_ids.dedup();
        Self {
            id,
            client_id,
            staff_ids,
            record: false,
        }
    }

    /// The same request, its transcript asked for at close or not.
    pub fn with_record(self, record: bool) -> Self {
        Self { record, ..self }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ThreadStatus {
    Open,
    Closed,
}

impl ThreadStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// `open` or `closed`, as stores keep it.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// One chat thread per service request, ever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub id: ThreadId,
    pub request_id: RequestId,
    pub admin_id: Option<UserId>,
    pub client_id: UserId,
    pub status: ThreadStatus,
    pub opened_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    /// The request's care team, as the last registration of the request set it.
    pub staff_ids: Vec<UserId>,
    /// A legal hold (SPEC §10): while set, nothing of the thread expires, is capped,
    /// purged or retracted.
    pub hold: bool,
    /// Where its transcript is on its way to the medical record (SPEC §10).
    pub record: RecordState,
}

/// A closed thread's transcript on its way to the medical record (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum RecordState {
    /// Not asked for (or not configured).
    #[default]
    None,
    /// The export job is queued or retrying: the content is kept, the purge waits.
    Pending,
    /// Every attempt failed: the content is kept (no TTL, no cap) until an admin's
    /// retry succeeds.
    Failed,
    /// The FHIR server has it; the purge follows.
    Recorded,
}

impl RecordState {
    /// Whether the thread keeps everything for the record meanwhile.
    pub fn keeps_content(self) -> bool {
        matches!(self, Self::Pending | Self::Failed)
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Thread {
    /// The thread's participants: its client, its admin if one is assigned, and the
    /// request's staff (SPEC §1).
    pub fn is_participant(&self, user: UserId) -> bool {
        self.client_id == user || self.admin_id == Some(user) || self.staff_ids.contains(&user)
    }

    pub fn is_closed(&self) -> bool {
        self.status == ThreadStatus::Closed
    }

    /// Whether every rule that forgets is suspended: a legal hold, or a transcript
    /// still on its way to the medical record.
    pub fn keeps_everything(&self) -> bool {
        self.hold || self.record.keeps_content()
    }

    /// Every participant, each once: the client, the admin, the staff.
    pub fn participants(&self) -> Vec<UserId> {
        let mut all = vec![self.client_id];
        all.extend(self.admin_id);
        all.extend(self.staff_ids.iter().copied());
        let mut seen = std::collections::HashSet::new();
        all.retain(|u| seen.insert(*u));
        all
    }
}

/// A text body: 1..=max characters once surrounding whitespace is trimmed.
#[derive(Clone, PartialEq, Eq)]
pub struct TextBody(String);

/// Why a text body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextBodyError {
    #[error("empty once trimmed")]
    Empty,
    #[error("longer than {max_chars} characters")]
    TooLong { max_chars: usize },
}

impl TextBody {
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, TextBodyError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(TextBodyError::Empty);
        }
        if chars > max_chars {
            return Err(TextBodyError::TooLong { max_chars });
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Content never goes to a log, not even by accident through `{:?}`.
impl std::fmt::Debug for TextBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextBody(<{} chars redacted>)", self.0.chars().count())
    }
}

/// A point on Earth: latitude in -90..=90, longitude in -180..=180.
#[derive(Clone, Copy, PartialEq)]
pub struct Coordinates {
    lat: f64,
    lng: f64,
}

/// Which coordinates are out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("coordinates out of range (latitude: {lat}, longitude: {lng})")]
pub struct CoordinatesError {
    /// The latitude is not in -90..=90.
    pub lat: bool,
    /// The longitude is not in -180..=180.
    pub lng: bool,
}

impl Coordinates {
    pub const LAT_RANGE: (i64, i64) = (-90, 90);
    pub const LNG_RANGE: (i64, i64) = (-180, 180);

    pub fn new(lat: f64, lng: f64) -> Result<Self, CoordinatesError> {
        let within = |v: f64, (min, max): (i64, i64)| {
            v.is_finite() && (min as f64..=max as f64).contains(&v)
        };
        let error = CoordinatesError {
            lat: !within(lat, Self::LAT_RANGE),
            lng: !within(lng, Self::LNG_RANGE),
        };
        if error.lat || error.lng {
            Err(error)
        } else {
            Ok(Self { lat, lng })
        }
    }

    pub fn lat(&self) -> f64 {
        self.lat
    }

    pub fn lng(&self) -> f64 {
        self.lng
    }
}

impl std::fmt::Debug for Coordinates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Coordinates(<redacted>)")
    }
}

/// An object key under `chats/{threadId}/`, free of every traversal trick.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MediaPath(String);

/// Why a media path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaPathError {
    #[error("empty")]
    Empty,
    #[error("longer than {} bytes", MediaPath::MAX_LEN)]
    TooLong,
    #[error("starts with a slash")]
    LeadingSlash,
    /// `..`, `//`, `\` or `%`.
    #[error("contains a traversal sequence or an escape")]
    Traversal,
    #[error("contains a '.' segment")]
    DotSegment,
    /// Control or invisible (format, separator) characters.
    #[error("contains control or invisible characters")]
    Invisible,
    /// Not a file under the thread's own prefix.
    #[error("not a file under {prefix}")]
    OutsideThread { prefix: String },
    /// Not an upload's name: a direct child of the prefix, with an image's extension.
    #[error("not an upload under {prefix}")]
    NotAnUpload { prefix: String },
}

impl MediaPath {
    /// The longest key accepted; object stores allow 1024 bytes.
    pub const MAX_LEN: usize = 1024;

    /// The prefix every object of a thread lives under.
    pub fn thread_prefix(thread: ThreadId) -> String {
        format!("chats/{thread}/")
    }

    /// Where the service keeps the thumbnails it makes: no upload URL is ever signed
    /// for a key under it, and no client may name one.
    pub fn thumbnails_prefix(thread: ThreadId) -> String {
        format!("chats/{thread}/thumbs/")
    }

    /// Where the previous release kept the images it checked (in the clear): still
    /// read, never written, never named by a client.
    pub fn legacy_checked_prefix(thread: ThreadId) -> String {
        format!("chats/{thread}/checked/")
    }

    /// A path a client names as its upload (SPEC §3.4): [`Self::parse`], a direct child
    /// of the thread's prefix (not a thumbnail, which only the service writes or
    /// names), with an image type's extension.
    pub fn parse_upload(raw: &str, thread: ThreadId) -> Result<Self, MediaPathError> {
        let path = Self::parse(raw, thread)?;
        let name = &path.0[Self::thread_prefix(thread).len()..];
        if name.contains('/') || crate::media::mime_for_key(name).is_none() {
            return Err(MediaPathError::NotAnUpload {
                prefix: Self::thread_prefix(thread),
            });
        }
        Ok(path)
    }

    /// The key of this image's thumbnail (`chats/{thread}/thumbs/<name>.<type>`), for
    /// an uploaded image's key; `None` for any other.
    pub fn thumbnail(&self, thread: ThreadId) -> Option<Self> {
        let name = self.0.strip_prefix(&Self::thread_prefix(thread))?;
        let (stem, _) = name.rsplit_once('.')?;
        let mime = crate::media::mime_for_key(name)?;
        if name.contains('/') {
            return None;
        }
        let extension = crate::media::extension_for(crate::media::thumbnail_type(mime)?)?;
        Self::parse(
            &format!("{}{stem}.{extension}", Self::thumbnails_prefix(thread)),
            thread,
        )
        .ok()
    }

    /// The image type its key declares.
    pub fn mime(&self) -> Option<&'static str> {
        crate::media::mime_for_key(&self.0)
    }

    /// Accepts only a plain key under the thread's own prefix (SPEC §3.4): no `..`,
    /// `//`, `\`, `%`, control or other invisible characters, nor a leading `/`.
    pub fn parse(raw: &str, thread: ThreadId) -> Result<Self, MediaPathError> {
        if raw.is_empty() {
            return Err(MediaPathError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(MediaPathError::TooLong);
        }
        if raw.starts_with('/') {
            return Err(MediaPathError::LeadingSlash);
        }
        if raw.contains("..") || raw.contains("//") || raw.contains('\\') || raw.contains('%') {
            return Err(MediaPathError::Traversal);
        }
        // `.` segments name the same key as without them: refused, like `..`.
        if raw.split('/').any(|segment| segment == ".") {
            return Err(MediaPathError::DotSegment);
        }
        // Control characters, and the Unicode format / separator characters that make a
        // key look like another one (zero-width spaces, bidi overrides, NBSP...).
        if raw.chars().any(|c| {
            c.is_control()
                || matches!(c, '\u{00A0}' | '\u{00AD}' | '\u{2000}'..='\u{200F}' | '\u{2028}'..='\u{202F}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
        }) {
            return Err(MediaPathError::Invisible);
        }
        let prefix = Self::thread_prefix(thread);
        match raw.strip_prefix(&prefix) {
            Some(name) if !name.is_empty() && !name.ends_with('/') => Ok(Self(raw.to_owned())),
            _ => Err(MediaPathError::OutsideThread { prefix }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MediaPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaPath(<redacted>)")
    }
}

/// The content of a message, in plaintext. It exists only inside the service, between
/// validation and sealing (on post) or between opening and the response (on list).
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    Text(TextBody),
    Image(MediaPath),
    Location(Coordinates),
}

impl MessageContent {
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Text(_) => MessageKind::Text,
            Self::Image(_) => MessageKind::Image,
            Self::Location(_) => MessageKind::Location,
        }
    }

    /// The bytes that get sealed: UTF-8 for text and paths, two big-endian `f64` for a
    /// location. The kind is stored beside the ciphertext and bound into its AAD.
    pub fn to_plaintext(&self) -> Vec<u8> {
        match self {
            Self::Text(t) => t.0.as_bytes().to_vec(),
            Self::Image(p) => p.0.as_bytes().to_vec(),
            Self::Location(c) => {
                let mut out = Vec::with_capacity(16);
                out.extend_from_slice(&c.lat.to_be_bytes());
                out.extend_from_slice(&c.lng.to_be_bytes());
                out
            }
        }
    }

    /// The inverse of [`to_plaintext`](Self::to_plaintext). `None` when the bytes are
    /// not what a message of that kind seals, which means the data is corrupt.
    pub fn from_plaintext(kind: MessageKind, bytes: &[u8]) -> Option<Self> {
        match kind {
            MessageKind::Text => {
                let s = std::str::from_utf8(bytes).ok()?;
                Some(Self::Text(TextBody(s.to_owned())))
            }
            MessageKind::Image => {
                let s = std::str::from_utf8(bytes).ok()?;
                Some(Self::Image(MediaPath(s.to_owned())))
            }
            MessageKind::Location => {
                let lat = f64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
                let lng = f64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
                (bytes.len() == 16).then_some(Self::Location(Coordinates { lat, lng }))
            }
        }
    }
}

/// A message as stores hold it: metadata in the clear, content sealed. `content` is
/// `None` once the thread has been redacted (crypto-shredded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: MessageId,
    pub thread_id: ThreadId,
    pub sender_id: UserId,
    pub kind: MessageKind,
    pub content: Option<SealedContent>,
    pub created_at: Timestamp,
}

/// A client's `Idempotency-Key` for one post (SPEC §3.4): 1..=64 visible ASCII
/// characters. A repeat with the same key, by the same sender, to the same thread,
/// within the message TTL, stores nothing and gets the first post's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// An `Idempotency-Key` that is not 1..=64 visible ASCII characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not 1 to 64 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, InvalidIdempotencyKey> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message as a participant reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageView {
    pub id: MessageId,
    pub thread_id: ThreadId,
    pub sender_id: UserId,
    pub kind: MessageKind,
    /// `None` when redacted.
    pub content: Option<MessageContent>,
    /// A signed GET URL for images, when media storage is configured.
    pub media_url: Option<String>,
    /// A signed URL of the image's thumbnail, for an image.
    pub thumb_url: Option<String>,
    pub created_at: Timestamp,
}

impl MessageView {
    pub fn redacted(&self) -> bool {
        self.content.is_none()
    }
}

/// Where a page of the inbox starts: after the thread with this last activity and id,
/// in the inbox's order (last activity, then thread id, both descending). Clients see
/// it as an opaque string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCursor {
    pub activity_at: Timestamp,
    pub thread_id: ThreadId,
}

impl InboxCursor {
    /// `"<microseconds>.<thread id>"`: opaque to clients, stable for the service.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.activity_at.timestamp_micros(), self.thread_id)
    }

    /// What [`Self::encode`] made; anything else is `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (micros, thread) = raw.split_once('.')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(micros) || !digits(thread) {
            return None;
        }
        Some(Self {
            activity_at: chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            thread_id: thread.parse().ok()?,
        })
    }
}

/// Which threads an inbox lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxQuery {
    /// Whose inbox: their threads, and their read markers for `unread`.
    pub reader: UserId,
    /// Every thread, not only the reader's (an admin's `scope=all`).
    pub everyone: bool,
    /// `None`: open and closed.
    pub status: Option<ThreadStatus>,
    pub after: Option<InboxCursor>,
    pub limit: u32,
}

/// A thread as the inbox lists it: no content, ever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    pub thread: Thread,
    /// The newest message posted, and when (kept or not: activity, not content).
    pub last_message_id: Option<MessageId>,
    pub last_message_at: Option<Timestamp>,
    /// The reader's read marker on this thread.
    pub read_up_to: Option<MessageId>,
}

impl InboxEntry {
    /// What the inbox is ordered by: the newest message's time, else the opening.
    pub fn activity_at(&self) -> Timestamp {
        self.last_message_at.unwrap_or(self.thread.opened_at)
    }

    pub fn cursor(&self) -> InboxCursor {
        InboxCursor {
            activity_at: self.activity_at(),
            thread_id: self.thread.id,
        }
    }
}

/// A page of the inbox, with the number of unread messages of each thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxPage {
    pub threads: Vec<(InboxEntry, u64)>,
    pub next: Option<InboxCursor>,
}

/// A page of a thread's messages as a reader lists them (SPEC §3.3), with every read
/// marker of the thread.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageList {
    pub messages: Vec<MessageView>,
    /// Whether messages older than the first one of this page exist.
    pub has_more: bool,
    /// Each user who marked messages read, and their marker, by user id.
    pub reads: Vec<(UserId, MessageId)>,
}

/// One page of a thread's messages, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage<M> {
    pub messages: Vec<M>,
    /// Whether messages older than the first one of this page exist.
    pub has_more: bool,
}

impl<M> MessagePage<M> {
    pub fn empty() -> Self {
        Self {
            messages: Vec::new(),
            has_more: false,
        }
    }
}
