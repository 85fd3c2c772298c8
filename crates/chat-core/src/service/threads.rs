//! The thread use cases: registering a request, opening, closing, and who may follow
//! a thread or upload to it.

use super::*;
use crate::channel::Channel;

impl ChatService {
    /// Registers (or updates) a service request and its care team (SPEC §3.1). Admins
    /// only. A new team applies at once: members no longer on it lose the thread, and
    /// their live subscriptions end on every instance.
    pub async fn register_request(
        &self,
        user: &User,
        id: RequestId,
        client_id: UserId,
        staff_ids: Vec<UserId>,
        record: bool,
    ) -> Result<ServiceRequest, ChatError> {
        let result = async {
            self.policy.may_register_request(user).map_err(denied)?;
            let request = ServiceRequest::new(id, client_id, staff_ids).with_record(record);
            if request.staff_ids.len() > ServiceRequest::MAX_STAFF {
                return Err(ValidationErrors::single(
                    "staff_ids",
                    Invalid::TooManyItems {
                        max: ServiceRequest::MAX_STAFF,
                    },
                )
                .into());
            }
            let stored = self.ports.requests.upsert(request).await?;
            let changed = self
                .ports
                .threads
                .set_staff(stored.id, &stored.staff_ids)
                .await?;
            if let Some((thread, before)) = changed {
                let removed: Vec<UserId> = before
                    .into_iter()
                    .filter(|member| !thread.is_participant(*member))
                    .collect();
                if !removed.is_empty() {
                    self.publish(ChatEvent::AccessRevoked {
                        thread_id: thread.id,
                        user_ids: removed,
                    })
                    .await;
                }
            }
            Ok(stored)
        }
        .await;
        self.audit(AuditEvent {
            request: Some(id),
            ..self.audit_event(Some(user), AuditAction::RegisterRequest, None, &result)
        });
        result
    }

    /// Opens the request's thread, or returns the existing one (also when closed).
    pub async fn open_thread(&self, user: &User, request: RequestId) -> Result<Thread, ChatError> {
        let result = async {
            if !self.policy.enabled {
                return Err(ChatError::Disabled);
            }
            let request = self
                .ports
                .requests
                .get(request)
                .await?
                .ok_or(ChatError::NotFound)?;
            self.policy.may_open(user, &request).map_err(denied)?;
            let admin = user.is_admin().then_some(user.id);
            let thread = self
                .ports
                .threads
                .open_for_request(&request, admin, self.ports.clock.now())
                .await?;
            if !thread.is_closed() {
                self.key_for_writing(thread.id).await?;
            }
            Ok(thread)
        }
        .await;
        let thread = result.as_ref().ok().map(|t| t.id);
        self.audit(AuditEvent {
            request: Some(request),
            ..self.audit_event(Some(user), AuditAction::Open, thread, &result)
        });
        result
    }

    /// Follows every thread's events, for real-time delivery (SPEC §6): what each
    /// instance's relay to its sockets subscribes to. Messages arrive sealed; the
    /// relay opens them with [`Self::open_for_broadcast`].
    pub async fn subscribe_events(&self) -> Result<Box<dyn EventSubscription>, ChatError> {
        Ok(self.ports.events.subscribe().await?)
    }

    /// Routes `thread`'s events to this instance while the interest lives: a socket
    /// holds one for each thread it subscribes to, so that an instance receives only
    /// its own sockets' threads' events (SPEC §6). Whoever calls this has checked the
    /// subscriber's access (the channel's signature).
    pub async fn follow_events(&self, thread: ThreadId) -> Result<Interest, ChatError> {
        Ok(self.ports.events.follow(thread).await?)
    }

    /// Relays a client event (a Pusher `client-…` whisper, such as typing) from a socket
    /// subscribed to `thread` to the thread's other subscribers on every instance
    /// (`origin` names the sending socket, which does not get it back). Relayed, never
    /// stored, logged or audited (a typing indicator fires several times a second). An
    /// error means the bus is down: the caller delivers to its own sockets only.
    pub async fn relay_client_event(
        &self,
        thread: ThreadId,
        presence: bool,
        origin: String,
        name: String,
        data: String,
    ) -> Result<(), ChatError> {
        let event = ChatEvent::ClientEvent {
            thread_id: thread,
            presence,
            origin,
            name,
            data,
        };
        Ok(self.ports.events.publish(event).await?)
    }

    /// Announces on every instance that `user` joined (`Some(info)`) or left (`None`)
    /// the thread's presence channel: their first socket came or their last went.
    /// Best effort, like every event.
    pub async fn announce_presence(
        &self,
        thread: ThreadId,
        user: UserId,
        joined: Option<(String, String)>,
    ) {
        let event = match joined {
            Some((info, origin)) => ChatEvent::MemberAdded {
                thread_id: thread,
                user_id: user,
                info,
                origin,
            },
            None => ChatEvent::MemberRemoved {
                thread_id: thread,
                user_id: user,
            },
        };
        self.publish(event).await;
    }

    /// `Ok` when the thread exists (for the host, which names threads by channel).
    pub async fn thread_exists(&self, thread: ThreadId) -> Result<(), ChatError> {
        if !self.policy.enabled {
            return Err(ChatError::Disabled);
        }
        self.ports
            .threads
            .get(thread)
            .await?
            .map(|_| ())
            .ok_or(ChatError::NotFound)
    }

    /// Relays the host's own event (the Pusher HTTP API) to the subscribers of an
    /// existing thread's channel on every instance, except the socket it names. Never
    /// stored, logged or audited: the host's event, not the chat's. `NotFound` for a
    /// thread that does not exist; an error of the bus is `Unavailable`.
    pub async fn relay_host_event(
        &self,
        channel: Channel,
        name: String,
        data: String,
        except_socket: Option<String>,
    ) -> Result<(), ChatError> {
        self.thread_exists(channel.thread).await?;
        let event = ChatEvent::HostEvent {
            thread_id: channel.thread,
            presence: channel.presence,
            name,
            data,
            except_socket,
        };
        Ok(self.ports.events.publish(event).await?)
    }

    /// Told that `thread` was closed, on this instance or another (its `ThreadClosed`
    /// event): the key this instance may hold in memory is dropped now, before the
    /// purge destroys the stored one.
    pub fn thread_closed(&self, thread: ThreadId) {
        self.forget_key(thread);
    }

    /// Closes the thread (idempotent: the first `closed_at` stays), queues its purge and
    /// announces it.
    pub async fn close_thread(&self, user: &User, thread: ThreadId) -> Result<Thread, ChatError> {
        let result = async {
            let thread = self
                .authorized_thread(user, thread, ThreadAction::Close)
                .await?;
            if thread.is_closed() {
                return Ok(thread);
            }
            // A transcript asked for goes to the record before the purge: the thread
            // keeps everything from before it is closed, so no sweep purges it first.
            let record = match &self.ports.recorder {
                Some(_) => self
                    .ports
                    .requests
                    .get(thread.request_id)
                    .await?
                    .is_some_and(|r| r.record),
                None => false,
            };
            if record {
                // The message store first (a store that expires by itself stops), as
                // for a legal hold.
                self.ports.messages.set_hold(thread.id, true).await?;
                self.ports
                    .threads
                    .set_record_state(thread.id, RecordState::Pending)
                    .await?;
            }
            let now = self.ports.clock.now();
            let closed = self
                .ports
                .threads
                .close(thread.id, now)
                .await?
                .ok_or(ChatError::NotFound)?;
            self.forget_key(closed.id);
            // The close is stored; a failed enqueue is caught up by the sweep, which purges
            // the media of every closed thread (a record's by an admin's retry). Every
            // upload goes through the service, which refuses a closed thread's, so one
            // purge suffices.
            let job = match record {
                true => JobKind::RecordThread(closed.id),
                false => JobKind::PurgeThread(closed.id),
            };
            if let Err(error) = self.ports.jobs.enqueue(job, now).await {
                tracing::warn!(thread_id = %closed.id, %error, "could not queue the purge or record job");
            }
            if let Some(closed_at) = closed.closed_at {
                self.publish(ChatEvent::ThreadClosed {
                    thread_id: closed.id,
                    closed_at,
                })
                .await;
            }
            self.queue_thread_closed(&closed).await;
            Ok(closed)
        }
        .await;
        self.audit(self.audit_event(Some(user), AuditAction::Close, Some(thread), &result));
        result
    }

    /// Whether an upload to `thread`'s media may be written now (SPEC §3.6): while it is
    /// open. The service's own upload gateway asks before it stores anything; a closed
    /// thread is `ThreadClosed`, an unknown one `NotFound`.
    pub async fn accepts_upload(&self, thread: ThreadId) -> Result<(), ChatError> {
        let thread = self
            .ports
            .threads
            .get(thread)
            .await?
            .ok_or(ChatError::NotFound)?;
        if thread.is_closed() {
            return Err(ChatError::ThreadClosed);
        }
        Ok(())
    }

    /// Checks that `user` may follow the thread's real-time channel, and audits the
    /// subscription (SPEC §6: `POST /broadcasting/auth` signs only then).
    pub async fn authorize_subscription(
        &self,
        user: &User,
        thread: ThreadId,
    ) -> Result<Thread, ChatError> {
        let result = self
            .authorized_thread(user, thread, ThreadAction::View)
            .await;
        self.audit(self.audit_event(Some(user), AuditAction::Subscribe, Some(thread), &result));
        result
    }
}
