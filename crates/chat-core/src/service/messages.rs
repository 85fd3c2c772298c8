//! The message use cases: listing, opening for a reader or a subscriber, and posting.

use super::*;

impl ChatService {
    /// One page of the thread's messages, oldest first, opened for the reader, with
    /// the participants' read markers.
    pub async fn list_messages(
        &self,
        user: &User,
        thread: ThreadId,
        page: PageRequest,
    ) -> Result<MessageList, ChatError> {
        let result = async {
            let thread = self
                .authorized_thread(user, thread, ThreadAction::View)
                .await?;
            let now = self.ports.clock.now();
            let stored = self
                .ports
                .messages
                .page(
                    thread.id,
                    page.before,
                    page.limit.clamp(1, PageRequest::MAX_LIMIT),
                    self.retention_of(&thread).expired_before(now),
                )
                .await?;
            let reads = self.ports.threads.reads(thread.id).await?;
            if stored.messages.is_empty() {
                return Ok(MessageList {
                    messages: Vec::new(),
                    has_more: false,
                    reads,
                });
            }
            // A destroyed key leaves messages that cannot be opened: they read as redacted.
            // A closed thread's key is always read from the store, which is what the purge
            // destroys.
            let key = if thread.is_closed() {
                self.forget_key(thread.id);
                self.stored_key(thread.id).await?
            } else {
                self.existing_key(thread.id).await?
            };
            let mut messages = Vec::with_capacity(stored.messages.len());
            for message in stored.messages {
                messages.push(self.open_message(key.as_deref(), message).await?);
            }
            Ok(MessageList {
                messages,
                has_more: stored.has_more,
                reads,
            })
        }
        .await;
        self.audit(self.audit_event(Some(user), AuditAction::List, Some(thread), &result));
        result
    }

    /// Retracts a message (SPEC §3.10): by its sender, or an admin, while the thread is
    /// open. Its image object is deleted and its ciphertext destroyed; it lists as
    /// redacted from then on, and `MessageRetracted` announces it. Again: the same.
    pub async fn retract_message(
        &self,
        user: &User,
        thread: ThreadId,
        id: MessageId,
    ) -> Result<MessageId, ChatError> {
        let result = async {
            let thread = self
                .authorized_thread(user, thread, ThreadAction::Post)
                .await?;
            if thread.hold {
                return Err(ChatError::OnHold);
            }
            let cut = self
                .settings
                .retention
                .expired_before(self.ports.clock.now());
            let message = self
                .ports
                .messages
                .get(thread.id, id)
                .await?
                .filter(|m| cut.is_none_or(|cut| m.created_at >= cut))
                .ok_or(ChatError::NotFound)?;
            if message.sender_id != user.id && !user.is_admin() {
                return Err(ChatError::Forbidden);
            }
            if message.content.is_none() {
                return Ok(id);
            }
            // The image object first: its path is in the content this destroys.
            if message.kind == MessageKind::Image {
                let key = self.existing_key(thread.id).await?;
                let opened = self.open_message(key.as_deref(), message).await?;
                if let Some(MessageContent::Image(path)) = &opened.content {
                    self.delete_image(thread.id, path).await?;
                }
            }
            self.ports.messages.redact(thread.id, id).await?;
            self.publish(ChatEvent::MessageRetracted {
                thread_id: thread.id,
                id,
            })
            .await;
            Ok(id)
        }
        .await;
        self.audit(AuditEvent {
            message: Some(id),
            ..self.audit_event(Some(user), AuditAction::Retract, Some(thread), &result)
        });
        result
    }

    /// Opens one stored message for a reader who may see it.
    pub async fn open_message(
        &self,
        key: Option<&dyn ThreadKey>,
        message: StoredMessage,
    ) -> Result<MessageView, ChatError> {
        let content = match (key, &message.content) {
            (Some(key), Some(sealed)) => {
                let aad = MessageAad {
                    thread: message.thread_id,
                    message: message.id,
                    kind: message.kind,
                };
                let plain = key.open(&aad, sealed)?;
                let content = MessageContent::from_plaintext(message.kind, &plain)
                    .ok_or(crate::crypto::CryptoError::Authentication)?;
                Some(content)
            }
            _ => None,
        };
        let (media_url, thumb_url) = match &content {
            Some(MessageContent::Image(path)) if self.ports.media.is_some() => {
                let (image, thumbnail) = self.image_urls(message.thread_id, path).await?;
                (Some(image), thumbnail)
            }
            _ => (None, None),
        };
        Ok(MessageView {
            id: message.id,
            thread_id: message.thread_id,
            sender_id: message.sender_id,
            kind: message.kind,
            content,
            media_url,
            thumb_url,
            created_at: message.created_at,
        })
    }

    /// Opens a message for real-time delivery (SPEC §6) to sockets whose subscription
    /// `POST /broadcasting/auth` signed after checking the user may list the thread.
    pub async fn open_for_broadcast(
        &self,
        message: StoredMessage,
    ) -> Result<MessageView, ChatError> {
        let key = self.existing_key(message.thread_id).await?;
        self.open_message(key.as_deref(), message).await
    }

    /// Authorizes, validates (with `content`, run only once the caller may post, as a
    /// Laravel form request does), seals, stores and announces a message.
    ///
    /// With `key`, a repeat of a post that was stored (even one answered `Unavailable`
    /// because the store failed while committing it) returns the stored id, stores
    /// nothing, and announces the stored message again: an event may so reach a
    /// subscriber twice, never not at all (clients key messages by id).
    pub async fn post_message(
        &self,
        user: &User,
        thread: ThreadId,
        key: Option<IdempotencyKey>,
        content: impl FnOnce() -> Result<MessageContent, ValidationErrors> + Send,
    ) -> Result<MessageId, ChatError> {
        let result = async {
            let thread = self
                .authorized_thread(user, thread, ThreadAction::Post)
                .await?;
            let content = content()?;
            // The image was checked, cleaned and sealed when it was uploaded: it must
            // be there, under the thread's prefix.
            if let MessageContent::Image(path) = &content {
                if !self.media()?.exists(path).await? {
                    return Err(ChatError::Invalid(ValidationErrors::single(
                        "mediaPath",
                        Invalid::NotUploaded,
                    )));
                }
            }
            let ready = ReadyPost {
                sender: user.id,
                kind: content.kind(),
                plaintext: content.to_plaintext(),
                idempotency_key: key,
                thread_key: self.key_for_writing(thread.id).await?,
            };
            drop(content);
            let stores = Stores {
                messages: self.ports.messages.as_ref(),
                threads: self.ports.threads.as_ref(),
                events: self.ports.events.as_ref(),
                clock: self.ports.clock.as_ref(),
                retention: self.retention_of(&thread),
            };
            let kind = ready.kind;
            match self.appends.append(&stores, thread.id, ready).await? {
                Posted::Stored(id, at) => {
                    self.queue_message_created(&thread, user.id, id, kind, at)
                        .await;
                    self.arm_unread_check(thread.id, at).await;
                    Ok(id)
                }
                Posted::Duplicate(first) => {
                    let cut = self
                        .retention_of(&thread)
                        .expired_before(self.ports.clock.now());
                    self.announce_again(thread.id, first, cut).await;
                    Ok(first)
                }
            }
        }
        .await;
        self.audit(AuditEvent {
            message: result.as_ref().ok().copied(),
            ..self.audit_event(Some(user), AuditAction::Post, Some(thread), &result)
        });
        result
    }

    /// Publishes a stored message again: the repeat of a keyed post whose first try may
    /// have been stored without being announced (its answer was lost, or a store failed
    /// while committing it). Best effort, like every publish.
    async fn announce_again(
        &self,
        thread: ThreadId,
        id: MessageId,
        expired_before: Option<crate::Timestamp>,
    ) {
        let above = MessageId::new(id.get().saturating_add(1));
        match self
            .ports
            .messages
            .page(thread, above, 1, expired_before)
            .await
        {
            Ok(page) => match page.messages.into_iter().find(|m| m.id == id) {
                Some(message) => self.publish(ChatEvent::MessageCreated(message)).await,
                None => {
                    tracing::debug!(%thread, message_id = %id, "repeated post: the message is no longer kept")
                }
            },
            Err(error) => {
                tracing::warn!(%thread, message_id = %id, %error, "repeated post: could not read the message to announce it again");
            }
        }
    }
}
